"""SODMetric: the saliency scores (MAE, S, F and E measures) equal pysodmetrics' evaluators."""
import numpy as np
import py_sod_metrics as sod
import pytest
import torch
from mmseg.registry import METRICS

import uqseg  # noqa: F401
from tests.helpers.samples import make_sample


def _maps(n=5, h=24, w=30, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gt = np.zeros((h, w), np.uint8)
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        gt[y0:y0 + h // 2, x0:x0 + w // 2] = 1
        p = np.clip(gt * 0.7 + rng.random((h, w)) * 0.4, 0, 1).astype(np.float32)
        out.append((p, gt))
    return out


def test_matches_pysodmetrics_evaluators():
    pairs = _maps()
    m = METRICS.build(dict(type='SODMetric'))
    for p, gt in pairs:
        m.process({}, [make_sample(torch.from_numpy(p)[None], torch.from_numpy(gt).long(), set_name='X')])
    out = m.compute_metrics(m.results)

    # the reference: pysodmetrics' own evaluators stepped over the same uint8 maps
    fm = sod.FmeasureV2(metric_handlers={'fm': sod.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=0.3)})
    mae, sm, em = sod.MAE(), sod.Smeasure(), sod.Emeasure()
    for p, gt in pairs:
        pred = np.round(p * 255).astype(np.uint8)
        for e in (fm, mae, sm, em):
            e.step(pred=pred, gt=gt * 255)
    f = fm.get_results()['fm']
    e = em.get_results()['em']
    assert out['X/MAE'] == pytest.approx(mae.get_results()['mae'])
    assert out['X/S'] == pytest.approx(sm.get_results()['sm'])
    assert out['X/maxF'] == pytest.approx(f['dynamic'].max())
    assert out['X/meanF'] == pytest.approx(f['dynamic'].mean())
    assert out['X/adpF'] == pytest.approx(f['adaptive'])
    assert out['X/maxE'] == pytest.approx(e['curve'].max())
    assert out['X/meanE'] == pytest.approx(e['curve'].mean())
    # and MAE by hand: pysodmetrics min-max normalises every map (MATLAB mapminmax) first
    def mae_by_hand(p, gt):
        q = np.round(p * 255) / 255
        q = (q - q.min()) / (q.max() - q.min())
        return np.abs(q - gt).mean()
    # (1e-7: with numpy 1.24 (the oldest declared) pysodmetrics' MAE was 7e-9 off this float64 reference)
    assert out['X/MAE'] == pytest.approx(np.mean([mae_by_hand(p, gt) for p, gt in pairs]), abs=1e-7)


def test_perfect_prediction_scores_perfectly():
    gt = np.zeros((16, 16), np.uint8)
    gt[4:12, 4:12] = 1
    m = METRICS.build(dict(type='SODMetric'))
    m.process({}, [make_sample(torch.from_numpy(gt.astype(np.float32))[None], torch.from_numpy(gt).long())])
    out = m.compute_metrics(m.results)
    assert out['A/MAE'] == 0
    assert out['A/maxF'] == pytest.approx(1.0)
    assert out['A/S'] == pytest.approx(1.0)
    assert out['A/meanE'] > 0.99  # pysodmetrics' E curve can exceed 1 slightly at some thresholds


def test_rejects_multiclass_predictions():
    m = METRICS.build(dict(type='SODMetric'))
    with pytest.raises(ValueError, match='two-class softmax., got 3 classes'):
        m.process({}, [make_sample(torch.randn(3, 4, 4), torch.zeros(4, 4).long())])


def test_a_two_class_softmax_head_is_scored_on_its_foreground_probability():
    """EDL / DisMax on SOD need two channels: SODMetric reads p_1 as one sigmoid channel's p."""
    g = torch.Generator().manual_seed(0)
    p = torch.rand(1, 6, 6, generator=g)
    label = (torch.rand(6, 6, generator=g) > 0.5).long()
    two = torch.cat([torch.zeros_like(p), torch.log(p) - torch.log1p(-p)])  # softmax p_1 = p
    one, soft = METRICS.build(dict(type='SODMetric')), METRICS.build(dict(type='SODMetric'))
    one.process({}, [make_sample(p, label)])
    soft.process({}, [make_sample(two, label)])
    a, b = one.compute_metrics(one.results), soft.compute_metrics(soft.results)
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a)
