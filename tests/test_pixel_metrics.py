"""The pixel-level mmseg metrics of issue 4 (calibration extensions, misclassification detection,
OOD detection) against independent implementations and hand-worked cases."""
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import (average_precision_score, brier_score_loss, log_loss, roc_auc_score,
                             roc_curve)
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

import uqseg  # noqa: F401
from mmseg.registry import METRICS
from uqseg.evaluation import functional as F
from uqseg.evaluation.accumulators import ConfidenceHistogram
from uqseg.evaluation.binning import bin_index, bin_sums, fast_bin_index
from uqseg.evaluation.metrics._pixels import masked_bin_sums, masked_histogram
from _samples import evaluate_on_two_ranks, make_sample

KEYS_UNC = ('AURC', 'EAURC', 'AUROC', 'AUPR', 'FPR@95TPR')


def build(type_, **kw):
    return METRICS.build(dict(type=type_, **kw))


def run(m, samples, batch=2):
    for i in range(0, len(samples), batch):
        m.process({}, samples[i:i + batch])
    return m.compute_metrics(m.results)


def close(a, b, tol=1e-9):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def random_binary(n_img=6, h=13, w=17, seed=0, ignore=True, sets='ST', quantize=None):
    """Random sigmoid maps with labels drawn from a distorted p; some pixels ignored."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_img):
        p = torch.rand(1, h, w, generator=g) ** 1.5
        if quantize:
            p = (torch.floor(p * quantize) + 0.5) / quantize
        y = (torch.rand(h, w, generator=g) < p[0] * 0.7 + 0.15).long()
        if ignore:
            y[torch.rand(h, w, generator=g) < 0.1] = 255
        out.append(make_sample(p, y, set_name=sets[i % len(sets)], img_path=f'{i}.jpg'))
    return out


def flat(samples, name=None):
    """(p, label) over the valid pixels of the samples of set ``name`` (binary)."""
    sel = [s for s in samples if name is None or s['set_name'] == name]
    p = torch.cat([s['seg_logits']['data'].flatten() for s in sel])
    y = torch.cat([s['gt_sem_seg']['data'].flatten() for s in sel])
    keep = y != 255
    return p[keep], y[keep]  # p in the prediction's float32, as the metrics compute


# ----------------------------------------------------------------------------------------------
# fast binning == the reference binning
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize('n_bins', [1, 2, 3, 7, 10, 15, 1000, 10000, 2 ** 20])
def test_fast_binning_equals_reference_on_edges(dtype, n_bins):
    g = torch.Generator().manual_seed(n_bins)
    edges = (torch.arange(n_bins + 1, dtype=torch.float64) / n_bins).to(dtype)
    up = torch.nextafter(edges, torch.ones_like(edges)).clamp(0, 1)
    down = torch.nextafter(edges, torch.zeros_like(edges)).clamp(0, 1)
    conf = torch.cat([torch.rand(5000, generator=g).to(dtype), edges, up, down])
    assert torch.equal(fast_bin_index(conf, n_bins), bin_index(conf, n_bins))
    ok = torch.rand(conf.shape, generator=g) < 0.6
    valid = torch.rand(conf.shape, generator=g) < 0.8
    ref = bin_sums(conf[valid], ok[valid], n_bins)
    for corr in (ok, ok.long(), ok.to(dtype)):
        got = masked_bin_sums(conf, corr, valid, n_bins)
        assert torch.allclose(got, ref, rtol=1e-12, atol=1e-9)
    soft = torch.rand(conf.shape, generator=g, dtype=torch.float64)
    assert torch.allclose(masked_bin_sums(conf, soft, valid, n_bins, hard=False),
                          bin_sums(conf[valid], soft[valid], n_bins), rtol=1e-12, atol=1e-9)
    h = masked_histogram(conf, valid, n_bins, split=ok)
    assert torch.equal(h[0], bin_sums(conf[valid & ok], ok[valid & ok], n_bins)[0])
    assert torch.equal(h[1], bin_sums(conf[valid & ~ok], ok[valid & ~ok], n_bins)[0])
    assert torch.equal(masked_histogram(conf, None, n_bins), bin_sums(conf, ok, n_bins)[0])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2 ** 20), st.sampled_from([torch.float32, torch.float64]),
       st.lists(st.floats(0, 1, width=32), min_size=1, max_size=20), st.lists(st.integers(0, 2 ** 20), max_size=8))
def test_fast_binning_equals_reference_property(n_bins, dtype, values, at_edges):
    # arbitrary confidences, plus edges k/n (as stored in the dtype) of this n and their neighbours
    edges = (torch.tensor([k % (n_bins + 1) for k in at_edges], dtype=torch.float64) / n_bins).to(dtype)
    conf = torch.cat([torch.tensor(values, dtype=dtype), edges,
                      torch.nextafter(edges, torch.ones_like(edges)).clamp(0, 1),
                      torch.nextafter(edges, torch.zeros_like(edges)).clamp(0, 1)])
    assert torch.equal(fast_bin_index(conf, n_bins), bin_index(conf, n_bins))


# ----------------------------------------------------------------------------------------------
# PixelCalibrationMetric: per-image, NLL / Brier
# ----------------------------------------------------------------------------------------------
def test_pooled_and_per_image_differ_hand_worked():
    # image 1: p = .9, .9 with labels 1, 1 -> one bin, conf .9, acc 1: ECE .1, OE 0
    # image 2: p = .9, .9 with labels 0, 0 -> conf .9, acc 0: ECE .9, OE .9 * .9 = .81
    # per-image means: ECE .5, OE .405; pooled: conf .9, acc .5 -> ECE .4, OE .9 * .4 = .36
    a = make_sample(torch.tensor([[[0.9, 0.9]]]), torch.tensor([[1, 1]]), img_path='a.jpg')
    b = make_sample(torch.tensor([[[0.9, 0.9]]]), torch.tensor([[0, 0]]), img_path='b.jpg')
    out = run(build('PixelCalibrationMetric', per_image=True), [a, b])
    assert out['A/ECE'] == pytest.approx(0.4)
    assert out['A/OE'] == pytest.approx(0.36)
    assert out['A/ECE_img'] == pytest.approx(0.5)
    assert out['A/OE_img'] == pytest.approx(0.405)
    assert out['A/MCE_img'] == pytest.approx(0.5) and out['A/MCE'] == pytest.approx(0.4)


def test_default_keys_unchanged_and_options_add_keys():
    s = random_binary(n_img=2, sets='A')
    assert set(run(build('PixelCalibrationMetric'), s)) == {'A/ECE', 'A/MCE', 'A/RMSCE', 'A/OE'}
    full = run(build('PixelCalibrationMetric', per_image=True, nll_brier=True), s)
    assert set(full) == {f'A/{k}' for k in ('ECE', 'MCE', 'RMSCE', 'OE', 'NLL', 'Brier', 'ECE_img',
                                            'MCE_img', 'RMSCE_img', 'OE_img')}


@pytest.mark.parametrize('confidence', ['top-label', 'positive'])
def test_per_image_means_match_functional(confidence):
    samples = random_binary(n_img=5, seed=3)
    out = run(build('PixelCalibrationMetric', n_bins=15, confidence=confidence, per_image=True), samples)
    for name in 'ST':
        vals = {k: [] for k in ('ECE', 'MCE', 'RMSCE', 'OE')}
        for s in (s for s in samples if s['set_name'] == name):
            p, y = flat([s])
            conf, corr = (p, y.double()) if confidence == 'positive' else \
                (torch.maximum(p, 1 - p), ((p > 0.5).long() == y).double())
            vals['ECE'].append(F.calibration_error(conf, corr, 15, 'l1'))
            vals['MCE'].append(F.calibration_error(conf, corr, 15, 'max'))
            vals['RMSCE'].append(F.calibration_error(conf, corr, 15, 'l2'))
            vals['OE'].append(F.overconfidence_error(conf, corr, 15))
        for k, v in vals.items():
            assert out[f'{name}/{k}_img'] == pytest.approx(np.mean(v), abs=1e-9)


def test_image_without_valid_pixel_is_skipped_in_per_image_mean():
    good = make_sample(torch.tensor([[[0.9, 0.9]]]), torch.tensor([[1, 1]]))
    empty = make_sample(torch.tensor([[[0.2, 0.7]]]), torch.tensor([[255, 255]]))
    out = run(build('PixelCalibrationMetric', per_image=True, nll_brier=True), [good, empty])
    assert out['A/ECE_img'] == pytest.approx(0.1) and out['A/ECE'] == pytest.approx(0.1)
    out = run(build('PixelCalibrationMetric', per_image=True, nll_brier=True), [empty])
    assert all(math.isnan(v) for v in out.values())


def test_nll_brier_binary_match_sklearn():
    samples = random_binary(n_img=4, seed=4)
    samples.append(make_sample(torch.tensor([[[0.0, 1.0, 1.0]]]), torch.tensor([[0, 1, 0]]), set_name='S'))
    out = run(build('PixelCalibrationMetric', nll_brier=True), samples)
    for name in 'ST':
        p, y = flat(samples, name)
        eps = 1e-12
        ref_nll = float(-torch.where(y == 1, p, 1 - p).clamp(min=eps).log().mean())
        assert out[f'{name}/NLL'] == pytest.approx(ref_nll, rel=1e-6)
        if name == 'T':  # sklearn clips at machine epsilon, so compare where no p is 0 or 1
            assert out[f'{name}/NLL'] == pytest.approx(log_loss(y.numpy(), p.numpy(), labels=[0, 1]), rel=1e-6)
        assert out[f'{name}/Brier'] == pytest.approx(brier_score_loss(y.numpy(), p.numpy()), rel=1e-6)


def test_multiclass_top_label_nll_brier_and_per_image_match_references():
    g = torch.Generator().manual_seed(7)
    samples, per_img_ref, probs, labels = [], [], [], []
    for i in range(4):
        logits = torch.randn(4, 7, 9, generator=g) * 2
        y = torch.randint(0, 4, (7, 9), generator=g)
        y[0, :2] = 255
        samples.append(make_sample(logits, y, set_name='M', img_path=f'{i}.jpg'))
        keep = y != 255
        pr, yy = logits.softmax(0).permute(1, 2, 0)[keep], y[keep]
        probs.append(pr)
        labels.append(yy)
        per_img_ref.append(MulticlassCalibrationError(num_classes=4, n_bins=15)(pr, yy).item())
    out = run(build('PixelCalibrationMetric', n_bins=15, per_image=True, nll_brier=True), samples, batch=3)
    p, y = torch.cat(probs), torch.cat(labels)
    assert out['M/ECE'] == pytest.approx(MulticlassCalibrationError(num_classes=4, n_bins=15)(p, y).item(), abs=1e-6)
    assert out['M/ECE_img'] == pytest.approx(np.mean(per_img_ref), abs=1e-6)
    p64 = p.double() / p.double().sum(1, keepdim=True)
    assert out['M/NLL'] == pytest.approx(log_loss(y.numpy(), p64.numpy(), labels=[0, 1, 2, 3]), rel=1e-5)
    onehot = torch.nn.functional.one_hot(y, 4).double()
    assert out['M/Brier'] == pytest.approx(float(((p.double() - onehot) ** 2).sum(1).mean()), rel=1e-6)
    assert out['M/Brier'] == pytest.approx(F.brier_score(p, y), rel=1e-6)


def test_torchmetrics_confidence_one_difference_documented():
    # p = 1.0 with label 0 and p = .95 with label 1. uqseg's last bin (.9, 1] holds both:
    # mean p .975, frequency .5 -> ECE .475. torchmetrics bins [k/n, (k+1)/n) put 1.0 in a bin of
    # its own: gaps .05 and 1, each with weight 1/2 -> .525. The gaps have opposite signs, so
    # merging the bins changes the value; on continuous data the two agree (other tests).
    p = torch.tensor([[[1.0, 0.95]]])
    y = torch.tensor([[0, 1]])
    out = run(build('PixelCalibrationMetric', n_bins=10, confidence='positive'), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(0.475)
    tm = BinaryCalibrationError(n_bins=10)(p.flatten(), y.flatten()).item()
    assert tm == pytest.approx(0.525)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n_bins=st.sampled_from([5, 10, 15]))
def test_property_range_zero_and_batch_invariance(data, n_bins):
    n_img = data.draw(st.integers(1, 5))
    seed = data.draw(st.integers(0, 10 ** 6))
    samples = random_binary(n_img=n_img, h=5, w=7, seed=seed, sets='A')
    m1 = build('PixelCalibrationMetric', n_bins=n_bins, per_image=True, nll_brier=True)
    out1 = run(m1, samples, batch=n_img)
    batch = data.draw(st.integers(1, n_img))
    out2 = run(build('PixelCalibrationMetric', n_bins=n_bins, per_image=True, nll_brier=True), samples,
               batch=batch)
    assert out1.keys() == out2.keys()
    for k in out1:
        assert close(out1[k], out2[k], 1e-12)
        if 'NLL' not in k and 'Brier' not in k and not math.isnan(out1[k]):
            assert 0 <= out1[k] <= 1
    # a perfectly calibrated construction: in every bin the foreground frequency equals p
    levels = [(2 * k + 1) / (2 * n_bins) for k in range(n_bins)]
    ps, ys = [], []
    for lv in levels:
        m = 2 * n_bins  # pixels per level; lv * m = 2k + 1 positives exactly
        pos = round(lv * m)
        ps += [lv] * m
        ys += [1] * pos + [0] * (m - pos)
    perm = torch.randperm(len(ps), generator=torch.Generator().manual_seed(seed))
    p = torch.tensor(ps, dtype=torch.float64)[perm].reshape(1, 1, -1)
    y = torch.tensor(ys)[perm].reshape(1, -1)
    out = run(build('PixelCalibrationMetric', n_bins=n_bins, confidence='positive'), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(0, abs=1e-12) and out['A/MCE'] == pytest.approx(0, abs=1e-12)


def test_bad_inputs_raise_clear_errors():
    m = build('PixelCalibrationMetric')
    with pytest.raises(ValueError, match=r'i.jpg: seg_logits contain 1 non-finite value\(s\) \(e.g. inf\)'):
        m.process({}, [make_sample(torch.tensor([[[0.5, float('inf')]]]), torch.tensor([[0, 1]]), img_path='i.jpg')])
    with pytest.raises(ValueError, match='non-finite'):
        m.process({}, [make_sample(torch.tensor([[[0.5]], [[float('nan')]]]), torch.tensor([[0]]))])
    with pytest.raises(ValueError, match=r'sigmoid probabilities in \[0, 1\], got range \[-0.1'):
        m.process({}, [make_sample(torch.tensor([[[-0.1, 0.5]]]), torch.tensor([[0, 1]]))])
    with pytest.raises(ValueError, match=r'prediction of size \(2, 2\) but ground truth of size \(2, 3\)'):
        m.process({}, [make_sample(torch.rand(1, 2, 2), torch.zeros(2, 3, dtype=torch.long))])
    with pytest.raises(ValueError, match='ground truth has label 2 outside 0..1'):
        m.process({}, [make_sample(torch.rand(1, 1, 3), torch.tensor([[0, 2, 255]]))])
    with pytest.raises(ValueError, match="confidence='positive' needs a binary prediction"):
        build('PixelCalibrationMetric', confidence='positive').process(
            {}, [make_sample(torch.randn(3, 2, 2), torch.zeros(2, 2, dtype=torch.long))])
    with pytest.raises(ValueError, match='n_bins'):
        build('PixelCalibrationMetric', n_bins=0)
    assert m.results == []  # nothing half-added


def test_ignore_index_other_than_255():
    p = torch.tensor([[[0.9, 0.8, 0.3]]])
    y = torch.tensor([[1, 0, 0]])  # with ignore_index=0 only the first pixel counts
    out = run(build('PixelCalibrationMetric', ignore_index=0), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(0.1)


# ----------------------------------------------------------------------------------------------
# PixelUncertaintyMetric
# ----------------------------------------------------------------------------------------------
ORACLE_CONF = [.99, .95, .91, .87, .83, .71, .62, .55, .43, .34]
ORACLE_CORRECT = [1, 0, 1, 1, 1, 0, 1, 0, 0, 1]


def test_uncertainty_spec_oracle_via_score_field():
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


def test_uncertainty_matches_functional_and_sklearn_when_bins_resolve_ties():
    # confidences on bin centres of a 1024-bin grid (p and 1 - p exact in float32): each
    # histogram bin holds one distinct value, so the histogram metrics are the exact ones
    samples = random_binary(n_img=6, seed=8, quantize=1024)
    out = run(build('PixelUncertaintyMetric', n_bins=1024), samples, batch=4)
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


def test_uncertainty_on_continuous_data_within_bin_width_bounds():
    samples = random_binary(n_img=4, h=40, w=40, seed=9, sets='A')
    out = run(build('PixelUncertaintyMetric'), samples)  # 10000 bins
    conf, correct = _unc_reference(samples, 'A')
    # the metric equals the accumulator fed with the flattened pixels ...
    h = ConfidenceHistogram(10000)
    h.update(conf, correct)
    for k, v in h.compute().items():
        assert out[f'A/{k}'] == pytest.approx(v, abs=1e-12)
    # ... and the exact per-pixel values lie inside its documented bounds
    b = h.bounds()
    for key, exact in (('AURC', F.aurc(conf, correct)), ('EAURC', F.eaurc(conf, correct)),
                       ('AUROC', F.auroc(conf, correct))):
        assert b[key][0] - 1e-12 <= exact <= b[key][1] + 1e-12
    assert out['A/AUROC'] == pytest.approx(F.auroc(conf, correct), abs=1e-3)


def test_histogram_metrics_equal_the_accumulator():
    from uqseg.evaluation.metrics.pixel_uncertainty_metric import histogram_metrics
    g = torch.Generator().manual_seed(5)
    cases = [torch.zeros(2, 50), torch.stack([torch.rand(50, generator=g), torch.zeros(50)]).round()]
    cases += [torch.randint(0, 4, (2, 200), generator=g).double() for _ in range(5)]
    for state in cases:
        h = ConfidenceHistogram(state.shape[1])
        h.state = state.double()
        for tpr in (0.95, 0.8):
            ref, got = h.compute(tpr), histogram_metrics(state, tpr)
            assert ref.keys() == got.keys()
            assert all(close(got[k], ref[k], 1e-12) for k in ref)


def test_uncertainty_entropy_and_pred_sem_seg_options():
    samples = random_binary(n_img=3, seed=10, sets='A', quantize=1024)
    out = run(build('PixelUncertaintyMetric', score='entropy', per_image=False), samples)
    assert not any(k.endswith('_img') for k in out)
    # entropy is a monotone function of max(p, 1-p) for a binary head: same ranking
    ref = run(build('PixelUncertaintyMetric', per_image=False), samples)
    assert out['A/AUROC'] == pytest.approx(ref['A/AUROC'], abs=2e-3)
    # pred_sem_seg thresholded at .3 (a binary head's default threshold) changes correctness
    for s in samples:
        s['pred_sem_seg'] = dict(data=(s['seg_logits']['data'] > 0.3).long())
    out = run(build('PixelUncertaintyMetric', prediction='pred_sem_seg', n_bins=1024), samples)
    p, y = flat(samples)
    correct = ((p > 0.3).long() == y).double()
    assert out['A/AUROC'] == pytest.approx(F.auroc(torch.maximum(p, 1 - p), correct), abs=1e-10)


def test_uncertainty_bad_inputs():
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
    with pytest.raises(ValueError, match='score must be one of'):
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


def test_histograms_are_folded_memory_per_set():
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


# ----------------------------------------------------------------------------------------------
# OODDetectionMetric
# ----------------------------------------------------------------------------------------------
def _ood_samples(seed=13, n_id=7, n_ood=5, quantize=None):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_id + n_ood):
        ood = i >= n_id
        p = torch.rand(1, 6, 8, generator=g) * (0.5 if ood else 1.0) + (0.25 if ood else 0.0)
        if quantize:
            p = (torch.floor(p * quantize) + 0.5) / quantize
        y = (torch.rand(6, 8, generator=g) < p[0]).long() if not ood else torch.zeros(6, 8, dtype=torch.long)
        if i == 1:
            y[0] = 255
        out.append(make_sample(p, y, set_name='DTD' if ood else ('ID1' if i % 2 else 'ID2'), img_path=f'{i}.jpg'))
    return out


def test_ood_image_and_pixel_level_match_sklearn():
    samples = _ood_samples(quantize=2048)
    out = run(build('OODDetectionMetric', ood_sets=['DTD'], n_bins=2048), samples, batch=3)
    img, is_id, px, px_id = [], [], [], []
    for s in samples:
        p, _ = flat([s])
        conf = torch.maximum(p, 1 - p)
        img.append(float(conf.double().mean()))
        is_id.append(0 if s['set_name'] == 'DTD' else 1)
        px.append(conf)
        px_id.append(torch.full_like(conf, is_id[-1]))
    img, is_id = np.array(img), np.array(is_id)
    assert out['DTD/OOD_AUROC'] == pytest.approx(roc_auc_score(is_id, img), abs=1e-12)
    assert out['DTD/OOD_AUPR'] == pytest.approx(average_precision_score(1 - is_id, -img), abs=1e-12)
    fpr, tpr, _ = roc_curve(is_id, img)
    assert out['DTD/OOD_FPR@95TPR'] == pytest.approx(fpr[np.searchsorted(tpr, 0.95)], abs=1e-12)
    px, px_id = torch.cat(px).numpy(), torch.cat(px_id).numpy()
    assert out['DTD/OOD_AUROC_px'] == pytest.approx(roc_auc_score(px_id, px), abs=1e-10)
    assert out['DTD/OOD_AUPR_px'] == pytest.approx(average_precision_score(1 - px_id, -px), abs=1e-10)
    fpr, tpr, _ = roc_curve(px_id, px)
    assert out['DTD/OOD_FPR@95TPR_px'] == pytest.approx(fpr[np.searchsorted(tpr, 0.95)], abs=1e-10)


def test_ood_id_sets_median_and_missing_sets():
    samples = _ood_samples(seed=14)
    only1 = run(build('OODDetectionMetric', id_sets=['ID1'], image_score='median'), samples)
    img = [float(torch.maximum(p, 1 - p).median()) for p, _ in (flat([s]) for s in samples)]
    lab = [1 if s['set_name'] == 'ID1' else 0 for s in samples]
    keep = [i for i, s in enumerate(samples) if s['set_name'] in ('ID1', 'DTD')]
    assert only1['DTD/OOD_AUROC'] == pytest.approx(
        roc_auc_score([lab[i] for i in keep], [img[i] for i in keep]), abs=1e-12)
    out = run(build('OODDetectionMetric', ood_sets=['DTD', 'Places']), samples)
    assert math.isnan(out['Places/OOD_AUROC']) and math.isnan(out['Places/OOD_AUROC_px'])
    out = run(build('OODDetectionMetric'), [s for s in samples if s['set_name'] == 'DTD'])
    assert all(math.isnan(v) for v in out.values())  # no ID data
    with pytest.raises(ValueError, match='both id_sets and ood_sets'):
        build('OODDetectionMetric', ood_sets=['DTD'], id_sets=['DTD'])


# ----------------------------------------------------------------------------------------------
# two processes (gloo): same numbers as one process, with DistributedSampler-like padding
# ----------------------------------------------------------------------------------------------
CONFIGS = [dict(type='PixelCalibrationMetric', n_bins=10, per_image=True, nll_brier=True),
           dict(type='PixelUncertaintyMetric'),
           dict(type='OODDetectionMetric', ood_sets=['DTD'])]


def test_two_process_gloo_equals_one_process():
    samples = _ood_samples(seed=15, n_id=6, n_ood=3)  # 9 samples: rank 1 gets one padded repeat
    refs = []
    for cfg in CONFIGS:
        refs.append(run(METRICS.build(cfg), samples))
    results = evaluate_on_two_ranks(CONFIGS, samples)
    for rank in (0, 1):
        for ref, got in zip(refs, results[rank]):
            assert got.keys() == ref.keys()
            for k in ref:
                assert close(got[k], ref[k], 1e-12), (rank, k, got[k], ref[k])
