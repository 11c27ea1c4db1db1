"""PixelUncertaintyMetric: misclassification detection from a confidence or uncertainty map, against
the spec's oracle, the functional metrics, scikit-learn and the histogram's bounds."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from tests.helpers.metrics import build, close, flat, random_binary, run
from tests.helpers.samples import make_sample
from uqseg.core import functional as F
from uqseg.core.accumulators import ConfidenceHistogram

KEYS_UNC = ('AURC', 'EAURC', 'AUROC', 'AUPR', 'FPR@95TPR')
ORACLE_CONF = [.99, .95, .91, .87, .83, .71, .62, .55, .43, .34]
ORACLE_CORRECT = [1, 0, 1, 1, 1, 0, 1, 0, 0, 1]


def test_spec_oracle_via_a_score_field_and_as_an_uncertainty_map():
    # correctness from seg_logits (p = .9, label = correct), confidence from a field
    conf = torch.tensor(ORACLE_CONF)
    s = make_sample(torch.full((1, 1, 10), 0.9), torch.tensor([ORACLE_CORRECT]))
    s['seg_confidence'] = dict(data=conf.reshape(1, 1, 10))
    m = build('PixelUncertaintyMetric', score_field='seg_confidence', score_is='confidence')
    out = run(m, [s])
    assert out['A/AURC'] == pytest.approx(0.3121825, abs=1e-7)
    assert out['A/EAURC'] == pytest.approx(0.1995635, abs=1e-7)
    assert out['A/AUROC'] == pytest.approx(0.625)
    assert out['A/AUROC_img'] == pytest.approx(0.625)
    # the same as an uncertainty map u = 1 - conf on a (0, 2) scale
    s2 = dict(s)
    s2['seg_uncertainty'] = dict(data=(2 * (1 - conf)).reshape(1, 1, 10))
    out2 = run(build('PixelUncertaintyMetric', score_field='seg_uncertainty', score_range=(0, 2)), [s2])
    for k in KEYS_UNC:
        assert out2[f'A/{k}'] == pytest.approx(out[f'A/{k}'], abs=1e-9)


def _unc_reference(samples, name):
    p, y = flat(samples, name)
    conf = torch.maximum(p, 1 - p)
    correct = ((p > 0.5).long() == y).double()
    return conf, correct


def test_matches_functional_and_sklearn_when_bins_resolve_ties():
    # confidences on a 64-step grid: their ranking keys logit(max(p, 1 - p)) lie at least 0.06
    # apart, many bins of the 10,000-bin key histogram (docs/metrics.md#ranking-keys-in-the-histogram),
    # so each bin holds one distinct value and the histogram metrics are the exact ones
    samples = random_binary(n_img=6, seed=8, quantize=64)
    out = run(build('PixelUncertaintyMetric'), samples, batch=4)
    for name in 'ST':
        conf, correct = _unc_reference(samples, name)
        assert out[f'{name}/AURC'] == pytest.approx(F.aurc(conf, correct), abs=1e-10)
        assert out[f'{name}/EAURC'] == pytest.approx(F.eaurc(conf, correct), abs=1e-10)
        assert out[f'{name}/AUROC'] == pytest.approx(roc_auc_score(correct.numpy(), conf.numpy()), abs=1e-10)
        assert out[f'{name}/AUPR'] == pytest.approx(
            average_precision_score(1 - correct.numpy(), -conf.numpy()), abs=1e-10)
        fpr, tpr, _ = roc_curve(correct.numpy(), conf.numpy())
        assert out[f'{name}/FPR@95TPR'] == pytest.approx(fpr[np.searchsorted(tpr, 0.95)], abs=1e-10)
        per = [F.aurc(*_unc_reference([s], None)) for s in samples if s['set_name'] == name]
        assert out[f'{name}/AURC_img'] == pytest.approx(np.mean(per), abs=1e-10)


def _binary_key(p):
    """The ranking key of max(p, 1 - p) from its definition, logit(max(p, 1 - p)), in float64:
    log(max(p, 1 - p)) - log(min(p, 1 - p))."""
    p = p.double()
    q = 1 - p
    return torch.maximum(p, q).log() - torch.minimum(p, q).log()


def test_continuous_data_equal_the_accumulator_and_lie_within_its_bounds():
    samples = random_binary(n_img=4, h=40, w=40, seed=9, sets='A')
    out = run(build('PixelUncertaintyMetric'), samples)  # 10000 bins
    conf, correct = _unc_reference(samples, 'A')
    # the metric equals the accumulator fed with the flattened pixels' ranking keys ...
    h = ConfidenceHistogram(10000, coordinate='key')
    h.update(_binary_key(flat(samples, 'A')[0]), correct)
    for k, v in h.compute().items():
        assert out[f'A/{k}'] == pytest.approx(v, abs=1e-12)
    # ... and the exact per-pixel values lie inside its documented bounds
    b = h.bounds()
    for key, exact in (('AURC', F.aurc(conf, correct)), ('EAURC', F.eaurc(conf, correct)),
                       ('AUROC', F.auroc(conf, correct))):
        assert b[key][0] - 1e-12 <= exact <= b[key][1] + 1e-12
    assert out['A/AUROC'] == pytest.approx(F.auroc(conf, correct), abs=1e-3)


def test_entropy_score_and_pred_sem_seg_prediction_options():
    samples = random_binary(n_img=3, seed=10, sets='A', quantize=64)
    out = run(build('PixelUncertaintyMetric', score='entropy', per_image=False), samples)
    assert not any(k.endswith('_img') for k in out)
    # entropy is a monotone function of max(p, 1-p) for a binary head: same ranking
    ref = run(build('PixelUncertaintyMetric', per_image=False), samples)
    assert out['A/AUROC'] == pytest.approx(ref['A/AUROC'], abs=2e-3)
    # pred_sem_seg thresholded at .3 (a binary head's default threshold) changes correctness
    for s in samples:
        s['pred_sem_seg'] = dict(data=(s['seg_logits']['data'] > 0.3).long())
    out = run(build('PixelUncertaintyMetric', prediction='pred_sem_seg'), samples)
    p, y = flat(samples)
    correct = ((p > 0.3).long() == y).double()
    assert out['A/AUROC'] == pytest.approx(F.auroc(torch.maximum(p, 1 - p), correct), abs=1e-10)


def test_bad_inputs_and_undefined_values():
    s = make_sample(torch.rand(1, 2, 3), torch.zeros(2, 3, dtype=torch.long), img_path='u.jpg')
    with pytest.raises(KeyError, match="u.jpg: the data sample has no field 'seg_uncertainty'"):
        build('PixelUncertaintyMetric', score_field='seg_uncertainty').process({}, [s])
    s['seg_uncertainty'] = dict(data=torch.full((1, 2, 3), 1.5))
    with pytest.raises(ValueError, match=r'outside score_range=\(0, 1\)'):
        build('PixelUncertaintyMetric', score_field='seg_uncertainty').process({}, [s])
    s['seg_uncertainty'] = dict(data=torch.full((1, 2, 3), float('nan')))
    with pytest.raises(ValueError, match='non-finite'):
        build('PixelUncertaintyMetric', score_field='seg_uncertainty').process({}, [s])
    s['seg_uncertainty'] = dict(data=torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match=r'has shape \(3, 2\) but the ground truth has \(2, 3\)'):
        build('PixelUncertaintyMetric', score_field='seg_uncertainty').process({}, [s])
    with pytest.raises(ValueError, match="score='variance' is not a score"):
        build('PixelUncertaintyMetric', score='variance')
    with pytest.raises(ValueError, match='score_range'):
        build('PixelUncertaintyMetric', score_field='u', score_range=(1, 1))
    with pytest.raises(ValueError, match='score_is'):
        build('PixelUncertaintyMetric', score_field='u', score_is='higher')
    # a set without valid pixels: NaN, documented
    out = run(build('PixelUncertaintyMetric'), [make_sample(torch.rand(1, 2, 2), torch.full((2, 2), 255))])
    assert all(math.isnan(v) for v in out.values())
    # all pixels correct: AUROC / FPR undefined -> NaN; AURC 0
    out = run(build('PixelUncertaintyMetric'), [make_sample(torch.full((1, 2, 2), 0.8), torch.ones(2, 2).long())])
    assert math.isnan(out['A/AUROC']) and math.isnan(out['A/FPR@95TPR']) and out['A/AURC'] == 0


def test_histograms_are_folded_so_memory_stays_per_set():
    samples = random_binary(n_img=7, seed=12)
    m = build('PixelUncertaintyMetric')
    run(m, samples, batch=3)
    assert sum(r[2] is not None for r in m.results) == 1  # only the last entry keeps its histogram
    assert set(m._folded) == {'S', 'T'} and sum(m._n_folded.values()) == 6
    # evaluate() in one process: same numbers, state reset afterwards
    ref = m.compute_metrics(m.results)
    got = m.evaluate(len(samples))
    assert got.keys() == ref.keys() and all(close(got[k], ref[k], 1e-12) for k in ref)
    assert m.results == [] and not m._folded
    # a collector that drops a folded entry is detected, not silently mis-counted
    run(m, samples)
    with pytest.raises(RuntimeError, match='folded image'):
        m.evaluate(len(samples) - 2)
