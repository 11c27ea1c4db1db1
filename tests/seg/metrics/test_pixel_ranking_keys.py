"""Near-certain pixels are ranked right (issue 19): a float32 pixel softmax is exactly 1.0 beyond a
logit gap of ~17, so a histogram of max p puts every such pixel in its top bin. The ranking metrics
bin the confidence's ranking key instead; here a prediction with logit gaps from 20 to 200 whose
errors sit among its most confident pixels, against an exact float64 log-space reference."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from tests.helpers.metrics import build, run
from tests.helpers.samples import make_sample
from uqseg.core.accumulators import ConfidenceHistogram
from uqseg.core.functional import aurc

pytestmark = pytest.mark.usefixtures('one_thread')
K = 4


def _near_certain(seed, h=30, w=40, gap=(20.0, 200.0)):
    """Logits whose top class leads the others by ``gap`` (uniform) plus 0..5, an offset per pixel,
    float32 as a head gives them; the gap of each pixel; the top class."""
    g = torch.Generator().manual_seed(seed)
    top = torch.randint(0, K, (h, w), generator=g)
    lead = gap[0] + (gap[1] - gap[0]) * torch.rand(h, w, generator=g, dtype=torch.float64)
    z = -(lead[None] + 5 * torch.rand(K, h, w, generator=g, dtype=torch.float64))
    z.scatter_(0, top[None], 0.0)
    z = (z + 10 * torch.randn(1, h, w, generator=g, dtype=torch.float64)).float()
    return z, top, g


def _max_prob_key(z):
    """Reference ranking key of max-prob, from its definition in float64 log space:
    logit(max p) = -log sum_{j != top} exp(z_j - z_top)."""
    zd = z.double()
    d = zd - zd.max(0).values
    d = torch.where(d == 0, -torch.inf, d)  # the top class out (no ties among these logits)
    return -torch.logsumexp(d, 0)


def test_pixel_auroc_and_aurc_of_near_certain_pixels_are_within_the_bounds_of_the_exact_values():
    samples, keys, correct, conf32 = [], [], [], []
    for i in range(3):
        z, top, g = _near_certain(i)
        key = _max_prob_key(z)
        # errors among the most confident: the wrong rate grows with the key (the gap)
        p_err = 0.05 + 0.6 * (key - key.min()) / (key.max() - key.min())
        wrong = torch.rand(key.shape, generator=g, dtype=torch.float64) < p_err
        y = torch.where(wrong, (top + 1 + torch.randint(0, K - 1, top.shape, generator=g)) % K, top)
        y[0, :3] = 255
        samples.append(make_sample(z, y, img_path=f'{i}.png'))
        keep = y != 255
        keys.append(key[keep])
        correct.append((top == y)[keep])
        conf32.append(z.softmax(0).max(0).values[keep])
    key, correct, conf32 = torch.cat(keys), torch.cat(correct), torch.cat(conf32)
    assert bool((conf32 == 1.0).all())  # the float32 confidence is saturated at every pixel
    exact_auroc = roc_auc_score(correct.numpy(), key.numpy())
    exact_aurc = aurc((key - key.min()) / (key.max() - key.min()), correct)  # a monotone map onto [0, 1]
    assert exact_auroc < 0.4  # the errors are the confident pixels, and the key sees it

    m = build('PixelUncertaintyMetric', per_image=False)
    out = run(m, samples)
    hist = ConfidenceHistogram(10000, coordinate='key')
    for s in samples:
        hist.merge(m.image_histogram(s))
    b = hist.bounds()
    assert b['AUROC'][0] - 1e-12 <= exact_auroc <= b['AUROC'][1] + 1e-12
    assert b['AURC'][0] - 1e-12 <= exact_aurc <= b['AURC'][1] + 1e-12
    assert b['AUROC'][1] - b['AUROC'][0] < 2e-3 and b['AURC'][1] - b['AURC'][0] < 5e-3  # 3,600 pixels, 0.2 % bins
    assert b['AUROC'][0] - 1e-12 <= out['A/AUROC'] <= b['AUROC'][1] + 1e-12
    assert b['AURC'][0] - 1e-12 <= out['A/AURC'] <= b['AURC'][1] + 1e-12
    # what binning the saturated [0, 1] confidence gives: one tie group, AUROC 0.5, far off
    saturated = ConfidenceHistogram(10000)
    saturated.update(conf32, correct)
    assert saturated.compute()['AUROC'] == 0.5 and abs(exact_auroc - 0.5) > 0.1
    assert abs(saturated.compute()['AURC'] - exact_aurc) > 0.05
    # the other keyed scores rank these pixels too (entropy and margin keys saturate no sooner)
    for score in ('entropy', 'margin'):
        o = run(build('PixelUncertaintyMetric', score=score, per_image=False), samples)
        assert o['A/AUROC'] == pytest.approx(out['A/AUROC'], abs=0.05)


def test_ood_pixel_auroc_of_near_certain_pixels_matches_the_exact_value():
    """In-image OOD pixels (label 254) with smaller logit gaps than the ID pixels, every pixel
    saturated in float32: the pixel OOD AUROC is that of the float64 log-space keys."""
    samples, keys, is_id = [], [], []
    for i in range(3):
        z, top, g = _near_certain(10 + i)
        ood = torch.rand(top.shape, generator=g) < 0.3
        z2, _, _ = _near_certain(20 + i, gap=(20.0, 120.0))
        z = torch.where(ood[None], z2, z)  # OOD pixels: gaps 20..120; ID pixels 20..200
        y = torch.where(ood, torch.full_like(top, 254), top)
        samples.append(make_sample(z, y, set_name='ood', img_path=f'{i}.png'))
        keys.append(_max_prob_key(z).flatten())
        is_id.append(~ood.flatten())
    key, is_id = torch.cat(keys), torch.cat(is_id)
    exact = roc_auc_score(is_id.numpy(), key.numpy())
    assert 0.6 < exact < 0.9
    out = run(build('OODDetectionMetric', ood_sets=['ood'], ood_index=254), samples)
    # the key histogram's own bound (half the share of ID / OOD pairs sharing a bin)
    hist = ConfidenceHistogram(10000, coordinate='key')
    hist.update(key, is_id)
    half = hist.bounds()['AUROC_apriori'][1]
    assert half < 1e-3
    assert abs(out['ood/OOD_AUROC_px'] - exact) <= half + 1e-6
    # a histogram of the float32 confidence cannot tell them apart
    conf = ConfidenceHistogram(10000)
    conf.update(torch.cat([s['seg_logits']['data'].softmax(0).max(0).values.flatten() for s in samples]), is_id)
    assert conf.compute()['AUROC'] == 0.5
    np.testing.assert_array_less(0.1, abs(exact - 0.5))
