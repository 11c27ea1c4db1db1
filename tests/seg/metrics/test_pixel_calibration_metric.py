"""PixelCalibrationMetric: pooled and per-image calibration errors, NLL / Brier, against hand-worked
cases and independent implementations (torchmetrics, netcal, scikit-learn)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import brier_score_loss, log_loss
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

from tests.helpers.metrics import build, close, flat, random_binary, run
from tests.helpers.samples import make_sample
from uqseg.core import functional as F


def metric(**kw):
    return build('PixelCalibrationMetric', **kw)


def _unignored_binary(n_img=6, h=17, w=23, seed=0):
    """Random sigmoid maps without ignored pixels, sets 'S' / 'T' alternating."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n_img):
        p = torch.rand(1, h, w, generator=g) ** 2
        y = (torch.rand(h, w, generator=g) < p[0] * 0.8 + 0.1).long()
        samples.append(make_sample(p, y, set_name='S' if i % 2 else 'T', img_path=f'{i}.jpg'))
    return samples


# ----------------------------------------------------------------------------------------------
# hand-worked cases
# ----------------------------------------------------------------------------------------------
def test_hand_worked_binary_errors_top_label_and_positive():
    # p = [.9, .8, .3, .6] with labels [1, 0, 0, 1]; the 5th pixel is ignored.
    # top-label conf [.9, .8, .7, .6], prediction p > .5 -> [1, 1, 0, 1], correct [1, 0, 1, 1]
    # one pixel per bin: gaps .1, .8, .3, .4 -> ECE = 1.6 / 4 = .4, MCE = .8,
    # OE = (.8 * .8) / 4 = .16, RMSCE = sqrt((.01 + .64 + .09 + .16) / 4) = sqrt(.225)
    p = torch.tensor([[[0.9, 0.8, 0.3, 0.6, 0.99]]])
    y = torch.tensor([[1, 0, 0, 1, 255]])
    out = run(metric(n_bins=10), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(0.4)
    assert out['A/MCE'] == pytest.approx(0.8)
    assert out['A/OE'] == pytest.approx(0.16)
    assert out['A/RMSCE'] == pytest.approx(math.sqrt(0.225))
    pos = run(metric(n_bins=10, confidence='positive'), [make_sample(p, y)])
    # positive class: conf [.9, .8, .3, .6] vs labels [1, 0, 0, 1]: gaps .1, .8, .3, .4 again
    assert pos['A/ECE'] == pytest.approx(0.4)


def test_pooled_and_per_image_errors_differ_hand_worked():
    # image 1: p = .9, .9 with labels 1, 1 -> one bin, conf .9, acc 1: ECE .1, OE 0
    # image 2: p = .9, .9 with labels 0, 0 -> conf .9, acc 0: ECE .9, OE .9 * .9 = .81
    # per-image means: ECE .5, OE .405; pooled: conf .9, acc .5 -> ECE .4, OE .9 * .4 = .36
    a = make_sample(torch.tensor([[[0.9, 0.9]]]), torch.tensor([[1, 1]]), img_path='a.jpg')
    b = make_sample(torch.tensor([[[0.9, 0.9]]]), torch.tensor([[0, 0]]), img_path='b.jpg')
    out = run(metric(per_image=True), [a, b])
    assert out['A/ECE'] == pytest.approx(0.4)
    assert out['A/OE'] == pytest.approx(0.36)
    assert out['A/ECE_img'] == pytest.approx(0.5)
    assert out['A/OE_img'] == pytest.approx(0.405)
    assert out['A/MCE_img'] == pytest.approx(0.5) and out['A/MCE'] == pytest.approx(0.4)


def test_confidence_one_goes_to_the_last_bin_unlike_torchmetrics():
    # A pixel with p = 1.0 that is right: uqseg puts it in the last bin (.9, 1], together with a
    # pixel of confidence .95 that is wrong -> one bin, conf .975, acc .5, ECE .475.
    # torchmetrics puts 1.0 in a bin of its own: ECE (0 + .95) / 2 = .475 as well here, but its
    # MCE is the larger of the two gaps, .95.
    p = torch.tensor([[[1.0, 0.95]]])
    y = torch.tensor([[1, 0]])
    out = run(metric(n_bins=10, confidence='positive'), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(abs(0.975 - 0.5))
    assert out['A/MCE'] == pytest.approx(abs(0.975 - 0.5))  # a single bin
    tm = BinaryCalibrationError(n_bins=10, norm='max')(p.flatten(), y.flatten()).item()
    assert tm == pytest.approx(0.95)  # torchmetrics: two bins, the larger gap .95
    # p = 1.0 with label 0 and p = .95 with label 1: uqseg's last bin holds both: mean p .975,
    # frequency .5 -> ECE .475. torchmetrics: gaps 1 and .05, each with weight 1/2 -> .525. The
    # gaps have opposite signs, so merging the bins changes the value; on continuous data the two
    # agree (test_positive_class_matches_torchmetrics).
    y = torch.tensor([[0, 1]])
    out = run(metric(n_bins=10, confidence='positive'), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(0.475)
    tm = BinaryCalibrationError(n_bins=10)(p.flatten(), y.flatten()).item()
    assert tm == pytest.approx(0.525)


def test_ignore_index_other_than_255():
    p = torch.tensor([[[0.9, 0.8, 0.3]]])
    y = torch.tensor([[1, 0, 0]])  # with ignore_index=0 only the first pixel counts
    out = run(metric(ignore_index=0), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(0.1)


def test_sample_without_set_name_goes_to_set_all():
    p = torch.tensor([[[0.9, 0.8]]])
    out = run(metric(), [make_sample(p, torch.tensor([[1, 1]]), set_name=None)])
    assert set(out) == {'all/ECE', 'all/MCE', 'all/RMSCE', 'all/OE'}
    assert out['all/ECE'] == pytest.approx(0.15)


# ----------------------------------------------------------------------------------------------
# keys and options
# ----------------------------------------------------------------------------------------------
def test_default_keys_unchanged_and_options_add_keys():
    s = random_binary(n_img=2, sets='A')
    assert set(run(metric(), s)) == {'A/ECE', 'A/MCE', 'A/RMSCE', 'A/OE'}
    full = run(metric(per_image=True, nll_brier=True), s)
    assert set(full) == {f'A/{k}' for k in ('ECE', 'MCE', 'RMSCE', 'OE', 'NLL', 'Brier', 'ECE_img',
                                            'MCE_img', 'RMSCE_img', 'OE_img')}


def test_set_or_image_without_valid_pixel_is_nan_and_skipped_in_per_image_mean():
    out = run(metric(), [make_sample(torch.rand(1, 2, 2), torch.full((2, 2), 255))])
    assert all(math.isnan(v) for v in out.values()) and set(out) == {'A/ECE', 'A/MCE', 'A/RMSCE', 'A/OE'}
    good = make_sample(torch.tensor([[[0.9, 0.9]]]), torch.tensor([[1, 1]]))
    empty = make_sample(torch.tensor([[[0.2, 0.7]]]), torch.tensor([[255, 255]]))
    out = run(metric(per_image=True, nll_brier=True), [good, empty])
    assert out['A/ECE_img'] == pytest.approx(0.1) and out['A/ECE'] == pytest.approx(0.1)
    out = run(metric(per_image=True, nll_brier=True), [empty])
    assert all(math.isnan(v) for v in out.values())


@pytest.mark.parametrize('confidence', ['top-label', 'positive'])
def test_per_image_means_match_functional(confidence):
    samples = random_binary(n_img=5, seed=3)
    out = run(metric(n_bins=15, confidence=confidence, per_image=True), samples)
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


# ----------------------------------------------------------------------------------------------
# independent implementations
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize('n_bins', [10, 15])
def test_positive_class_matches_torchmetrics(n_bins):
    # torchmetrics bins are [k/n, (k+1)/n) with 1.0 in an extra bin; uqseg's are (k/n, (k+1)/n].
    # They agree whenever no confidence sits exactly on an edge, as for these random values.
    samples = _unignored_binary()
    out = run(metric(n_bins=n_bins, confidence='positive'), samples)
    for name in 'ST':
        sel = [s for s in samples if s['set_name'] == name]
        p = torch.cat([s['seg_logits']['data'].flatten() for s in sel])
        y = torch.cat([s['gt_sem_seg']['data'].flatten() for s in sel])
        for norm, key in (('l1', 'ECE'), ('max', 'MCE'), ('l2', 'RMSCE')):
            ref = BinaryCalibrationError(n_bins=n_bins, norm=norm)(p, y).item()
            assert out[f'{name}/{key}'] == pytest.approx(ref, abs=1e-6)


def test_multiclass_top_label_errors_match_torchmetrics():
    g = torch.Generator().manual_seed(1)
    samples, probs, labels = [], [], []
    for _ in range(4):
        logits = torch.randn(5, 9, 11, generator=g) * 2
        y = torch.randint(0, 5, (9, 11), generator=g)
        y[0, :3] = 255
        samples.append(make_sample(logits, y, set_name='M'))
        keep = y != 255
        probs.append(logits.softmax(0).permute(1, 2, 0)[keep])
        labels.append(y[keep])
    out = run(metric(n_bins=15), samples)
    p, y = torch.cat(probs), torch.cat(labels)
    for norm, key in (('l1', 'ECE'), ('max', 'MCE'), ('l2', 'RMSCE')):
        ref = MulticlassCalibrationError(num_classes=5, n_bins=15, norm=norm)(p, y).item()
        assert out[f'M/{key}'] == pytest.approx(ref, abs=1e-6)


def test_multiclass_nll_brier_and_per_image_ece_match_references():
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
    out = run(metric(n_bins=15, per_image=True, nll_brier=True), samples, batch=3)
    p, y = torch.cat(probs), torch.cat(labels)
    assert out['M/ECE'] == pytest.approx(MulticlassCalibrationError(num_classes=4, n_bins=15)(p, y).item(), abs=1e-6)
    assert out['M/ECE_img'] == pytest.approx(np.mean(per_img_ref), abs=1e-6)
    p64 = p.double() / p.double().sum(1, keepdim=True)
    assert out['M/NLL'] == pytest.approx(log_loss(y.numpy(), p64.numpy(), labels=[0, 1, 2, 3]), rel=1e-5)
    onehot = torch.nn.functional.one_hot(y, 4).double()
    assert out['M/Brier'] == pytest.approx(float(((p.double() - onehot) ** 2).sum(1).mean()), rel=1e-6)
    assert out['M/Brier'] == pytest.approx(F.brier_score(p, y), rel=1e-6)


def test_nll_brier_binary_match_sklearn():
    samples = random_binary(n_img=4, seed=4)
    samples.append(make_sample(torch.tensor([[[0.0, 1.0, 1.0]]]), torch.tensor([[0, 1, 0]]), set_name='S'))
    out = run(metric(nll_brier=True), samples)
    for name in 'ST':
        p, y = flat(samples, name)
        eps = 1e-12
        ref_nll = float(-torch.where(y == 1, p, 1 - p).clamp(min=eps).log().mean())
        assert out[f'{name}/NLL'] == pytest.approx(ref_nll, rel=1e-6)
        if name == 'T':  # sklearn clips at machine epsilon, so compare where no p is 0 or 1
            assert out[f'{name}/NLL'] == pytest.approx(log_loss(y.numpy(), p.numpy(), labels=[0, 1]), rel=1e-6)
        assert out[f'{name}/Brier'] == pytest.approx(brier_score_loss(y.numpy(), p.numpy()), rel=1e-6)


def test_nll_of_a_softmax_head_is_exact_and_a_binary_heads_clamp_is_said():
    """Issue 19, item 3: a near-certain softmax head's wrong pixels have p_y = 0 in float32; the
    NLL comes from the logits (log-softmax), not from a 1e-12 clamp. A binary head's sigmoid
    probabilities can only be clamped: <set>/NLL-clamped says in how many pixels."""
    logits = torch.tensor([[[0.0, 3.0, 1.0]], [[-300.0, 2.0, 0.5]], [[9.0, -120.0, 0.0]]])  # (3, 1, 3)
    y = torch.tensor([[1, 2, 0]])
    out = run(metric(nll_brier=True), [make_sample(logits, y, set_name='M')])
    ref = float(-torch.log_softmax(logits.double(), 0).gather(0, y[None]).mean())
    assert out['M/NLL'] == pytest.approx(ref, rel=1e-6) and ref > 100
    assert 'M/NLL-clamped' not in out
    p = torch.tensor([[[0.0, 0.7, 1.0]]])
    out = run(metric(nll_brier=True), [make_sample(p, torch.tensor([[1, 1, 0]]), set_name='B')])
    assert out['B/NLL-clamped'] == 2
    assert out['B/NLL'] == pytest.approx((-2 * math.log(1e-12) - math.log(0.7)) / 3, rel=1e-6)


def test_matches_netcal_top_label():
    from netcal.metrics import ECE
    samples = _unignored_binary(n_img=4, seed=9)
    out = run(metric(n_bins=10), [dict(s, set_name='all') for s in samples])
    p = torch.cat([s['seg_logits']['data'].flatten() for s in samples]).double().numpy()
    y = torch.cat([s['gt_sem_seg']['data'].flatten() for s in samples]).numpy()
    # netcal scores the top label of a (N, 2) probability matrix, with equal-width bins over [0, 1]
    ref = ECE(bins=10).measure(np.stack([1 - p, p], axis=1), y)
    assert out['all/ECE'] == pytest.approx(ref, abs=1e-6)


# ----------------------------------------------------------------------------------------------
# invariances and bad input
# ----------------------------------------------------------------------------------------------
def test_batching_and_order_do_not_matter():
    samples = _unignored_binary(n_img=7, seed=5)
    a = run(metric(), samples, batch=1)
    b = run(metric(), list(reversed(samples)), batch=3)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n_bins=st.sampled_from([5, 10, 15]))
def test_property_errors_in_range_batch_invariant_and_zero_when_calibrated(data, n_bins):
    n_img = data.draw(st.integers(1, 5))
    seed = data.draw(st.integers(0, 10 ** 6))
    samples = random_binary(n_img=n_img, h=5, w=7, seed=seed, sets='A')
    m1 = metric(n_bins=n_bins, per_image=True, nll_brier=True)
    out1 = run(m1, samples, batch=n_img)
    batch = data.draw(st.integers(1, n_img))
    out2 = run(metric(n_bins=n_bins, per_image=True, nll_brier=True), samples, batch=batch)
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
    out = run(metric(n_bins=n_bins, confidence='positive'), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(0, abs=1e-12) and out['A/MCE'] == pytest.approx(0, abs=1e-12)


def test_bad_inputs_raise_errors_naming_the_image():
    m = metric()
    with pytest.raises(ValueError, match=r'i.jpg: seg_logits contain 1 non-finite value\(s\) \(e.g. inf\)'):
        m.process({}, [make_sample(torch.tensor([[[0.5, float('inf')]]]), torch.tensor([[0, 1]]), img_path='i.jpg')])
    with pytest.raises(ValueError, match=r'bad.jpg: seg_logits contain 1 non-finite'):
        run(metric(), [make_sample(torch.tensor([[[0.5, float('nan')]]]), torch.tensor([[0, 1]]), img_path='bad.jpg')])
    with pytest.raises(ValueError, match='non-finite'):
        m.process({}, [make_sample(torch.tensor([[[0.5]], [[float('nan')]]]), torch.tensor([[0]]))])
    with pytest.raises(ValueError, match=r'sigmoid probabilities in \[0, 1\], got range \[-0.1'):
        m.process({}, [make_sample(torch.tensor([[[-0.1, 0.5]]]), torch.tensor([[0, 1]]))])
    with pytest.raises(ValueError, match=r'sigmoid probabilities in \[0, 1\]'):
        run(metric(), [make_sample(torch.tensor([[[2.0, -1.0]]]), torch.tensor([[0, 1]]))])
    with pytest.raises(ValueError, match=r'prediction of size \(2, 2\) but ground truth of size \(2, 3\)'):
        m.process({}, [make_sample(torch.rand(1, 2, 2), torch.zeros(2, 3, dtype=torch.long))])
    with pytest.raises(ValueError, match=r'b.jpg: prediction of size \(1, 2\) but ground truth of size \(1, 3\)'):
        run(metric(), [make_sample(torch.rand(1, 1, 2), torch.tensor([[0, 1, 0]]), img_path='b.jpg')])
    with pytest.raises(ValueError, match='ground truth has label 2 outside 0..1'):
        m.process({}, [make_sample(torch.rand(1, 1, 3), torch.tensor([[0, 2, 255]]))])
    with pytest.raises(ValueError, match=r'c.jpg: ground truth has label 7'):
        run(metric(), [make_sample(torch.rand(1, 1, 2), torch.tensor([[0, 7]]), img_path='c.jpg')])
    with pytest.raises(ValueError, match="confidence='positive' needs a binary prediction"):
        metric(confidence='positive').process(
            {}, [make_sample(torch.randn(3, 2, 2), torch.zeros(2, 2, dtype=torch.long))])
    with pytest.raises(ValueError, match="PixelCalibrationMetric: confidence must be 'top-label' or 'positive', "
                                         "got 'both'"):
        metric(confidence='both')
    assert m.results == []  # nothing half-added


@pytest.mark.parametrize('bad', [0, -3, 2.5, True, '10'])
def test_bad_n_bins_names_the_metric_and_the_key(bad):
    """Issue 19: the message says which metric and which argument (built from a config, the stack has no
    other clue)."""
    with pytest.raises(ValueError, match=rf'^PixelCalibrationMetric: n_bins must be a positive int, got {bad!r}$'):
        metric(n_bins=bad)
