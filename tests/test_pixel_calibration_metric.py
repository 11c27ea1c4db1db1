import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

import uqseg  # noqa: F401
from mmseg.registry import METRICS
from _samples import evaluate_on_two_ranks, make_sample


def metric(**kw):
    return METRICS.build(dict(type='PixelCalibrationMetric', **kw))


def run(m, samples, batch=2):
    for i in range(0, len(samples), batch):
        m.process({}, samples[i:i + batch])
    return m.compute_metrics(m.results)


def test_hand_worked_binary_case():
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


def _random_binary(n_img=6, h=17, w=23, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n_img):
        p = torch.rand(1, h, w, generator=g) ** 2
        y = (torch.rand(h, w, generator=g) < p[0] * 0.8 + 0.1).long()
        samples.append(make_sample(p, y, set_name='S' if i % 2 else 'T', img_path=f'{i}.jpg'))
    return samples


@pytest.mark.parametrize('n_bins', [10, 15])
def test_positive_class_matches_torchmetrics(n_bins):
    # torchmetrics bins are [k/n, (k+1)/n) with 1.0 in an extra bin; uqseg's are (k/n, (k+1)/n].
    # They agree whenever no confidence sits exactly on an edge, as for these random values.
    samples = _random_binary()
    out = run(metric(n_bins=n_bins, confidence='positive'), samples)
    for name in 'ST':
        sel = [s for s in samples if s['set_name'] == name]
        p = torch.cat([s['seg_logits']['data'].flatten() for s in sel])
        y = torch.cat([s['gt_sem_seg']['data'].flatten() for s in sel])
        for norm, key in (('l1', 'ECE'), ('max', 'MCE'), ('l2', 'RMSCE')):
            ref = BinaryCalibrationError(n_bins=n_bins, norm=norm)(p, y).item()
            assert out[f'{name}/{key}'] == pytest.approx(ref, abs=1e-6)


def test_multiclass_top_label_matches_torchmetrics():
    g = torch.Generator().manual_seed(1)
    samples, probs, labels = [], [], []
    for i in range(4):
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


def test_confidence_one_goes_to_last_bin():
    # A pixel with p = 1.0 that is right: uqseg puts it in the last bin (.9, 1], together with a
    # pixel of confidence .95 that is wrong -> one bin, conf .975, acc .5, ECE .475.
    # (torchmetrics would put 1.0 in a bin of its own: ECE (0 + .95) / 2 = .475 as well here, but
    # the two differ once the last bin holds several values; see the binning module docstring.)
    p = torch.tensor([[[1.0, 0.95]]])
    y = torch.tensor([[1, 0]])
    out = run(metric(n_bins=10, confidence='positive'), [make_sample(p, y)])
    assert out['A/ECE'] == pytest.approx(abs(0.975 - 0.5))
    assert out['A/MCE'] == pytest.approx(abs(0.975 - 0.5))  # a single bin
    tm = BinaryCalibrationError(n_bins=10, norm='max')(p.flatten(), y.flatten()).item()
    assert tm == pytest.approx(0.95)  # torchmetrics: two bins, the larger gap .95


def test_batching_and_order_do_not_matter():
    samples = _random_binary(n_img=7, seed=5)
    a = run(metric(), samples, batch=1)
    b = run(metric(), list(reversed(samples)), batch=3)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-12)


def test_matches_netcal_top_label():
    from netcal.metrics import ECE
    samples = _random_binary(n_img=4, seed=9)
    out = run(metric(n_bins=10), [dict(s, set_name='all') for s in samples])
    p = torch.cat([s['seg_logits']['data'].flatten() for s in samples]).double().numpy()
    y = torch.cat([s['gt_sem_seg']['data'].flatten() for s in samples]).numpy()
    # netcal scores the top label of a (N, 2) probability matrix, with equal-width bins over [0, 1]
    ref = ECE(bins=10).measure(np.stack([1 - p, p], axis=1), y)
    assert out['all/ECE'] == pytest.approx(ref, abs=1e-6)


def test_bad_input_is_named():
    p = torch.tensor([[[0.5, float('nan')]]])
    with pytest.raises(ValueError, match=r'bad.jpg: seg_logits contain 1 non-finite'):
        run(metric(), [make_sample(p, torch.tensor([[0, 1]]), img_path='bad.jpg')])
    with pytest.raises(ValueError, match=r'b.jpg: prediction of size \(1, 2\) but ground truth of size \(1, 3\)'):
        run(metric(), [make_sample(torch.rand(1, 1, 2), torch.tensor([[0, 1, 0]]), img_path='b.jpg')])
    with pytest.raises(ValueError, match=r'c.jpg: ground truth has label 7'):
        run(metric(), [make_sample(torch.rand(1, 1, 2), torch.tensor([[0, 7]]), img_path='c.jpg')])
    with pytest.raises(ValueError, match=r'sigmoid probabilities in \[0, 1\]'):
        run(metric(), [make_sample(torch.tensor([[[2.0, -1.0]]]), torch.tensor([[0, 1]]))])
    with pytest.raises(ValueError, match='confidence must be'):
        metric(confidence='both')


def test_set_without_valid_pixel_is_nan():
    out = run(metric(), [make_sample(torch.rand(1, 2, 2), torch.full((2, 2), 255))])
    assert all(math.isnan(v) for v in out.values()) and set(out) == {'A/ECE', 'A/MCE', 'A/RMSCE', 'A/OE'}


def test_two_process_gloo_equals_one_process():
    samples = _random_binary(n_img=7, seed=11)
    ref = run(metric(n_bins=10), samples)
    results = {r: outs[0] for r, outs in evaluate_on_two_ranks(
        [dict(type='PixelCalibrationMetric', n_bins=10)], samples).items()}
    for rank in (0, 1):
        assert results[rank].keys() == ref.keys()
        for k in ref:
            assert results[rank][k] == pytest.approx(ref[k], abs=1e-12)
