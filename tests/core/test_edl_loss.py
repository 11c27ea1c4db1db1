"""EDLLoss (uqseg.core.edl_loss; spec section 2): the mean over valid pixels of the data term plus
the annealed KL, TEDL's cross-entropy stage, weights and reductions, and its input checks."""
import math

import pytest
import torch
import torch.nn.functional as F

from uqseg.core.checks import LabelRangeError
from uqseg.core.edl_loss import EDLLoss
from uqseg.core.evidential import log_alpha

pytestmark = pytest.mark.usefixtures('one_thread')
IGN = 255
D64 = torch.float64


def _data(n=2, k=3, h=3, w=4, seed=0, dtype=torch.float32):
    """log alpha channels (N,K,H,W) (>= 0) and labels (N,H,W) with some IGN pixels."""
    g = torch.Generator().manual_seed(seed)
    z = (2 * torch.rand(n, k, h, w, generator=g, dtype=D64)).to(dtype)
    y = torch.randint(0, k, (n, h, w), generator=g)
    y[0, 0, :] = IGN
    y[1, 2, 1] = IGN
    return z, y


def _digamma(v):
    return float(torch.digamma(torch.tensor(v, dtype=D64)))


def _by_hand(z, y, term, lam):
    """(sum, count) over valid pixels of the EDL loss from the formulas, pixel by pixel with the
    math module: alpha = exp(z), S = sum alpha, p = alpha / S, alpha~ = y + (1 - y) alpha."""
    n, k = z.shape[:2]
    zf, yf = z.double().reshape(n, k, -1), y.reshape(n, -1)
    total, count = 0.0, 0
    for i in range(n):
        for j in range(zf.shape[2]):
            c = int(yf[i, j])
            if c == IGN:
                continue
            alpha = [math.exp(float(zf[i, m, j])) for m in range(k)]
            s = sum(alpha)
            if term == 'mse':
                p = [a / s for a in alpha]
                data = sum(((m == c) - p[m]) ** 2 + p[m] * (1 - p[m]) / (s + 1) for m in range(k))
            elif term == 'log':
                data = math.log(s) - math.log(alpha[c])
            else:
                data = _digamma(s) - _digamma(alpha[c])
            at = [1.0 if m == c else alpha[m] for m in range(k)]
            st = sum(at)
            kl = (math.lgamma(st) - math.lgamma(k) - sum(math.lgamma(a) for a in at)
                  + sum((a - 1) * (_digamma(a) - _digamma(st)) for a in at))
            total += data + lam * kl
            count += 1
    return total, count


@pytest.mark.parametrize('term', ['mse', 'log', 'digamma'])
def test_edl_loss_is_mean_over_valid_pixels_of_data_term_plus_kl(term):
    z, y = _data()
    crit = EDLLoss(data_term=term, kl_weight=1.0, kl_anneal_iters=10)
    crit.step = 4  # lambda = 0.4
    assert crit.kl_factor() == pytest.approx(0.4)
    total, count = _by_hand(z, y, term, 0.4)
    assert count == 2 * 12 - 4 - 1
    got = crit(z, y)
    assert got.dtype == torch.float32 and got.dim() == 0
    assert got.item() == pytest.approx(total / count, rel=1e-5)
    # loss_weight scales it
    crit2 = EDLLoss(data_term=term, kl_anneal_iters=10, loss_weight=2.5)
    crit2.step = 4
    assert crit2(z, y).item() == pytest.approx(2.5 * total / count, rel=1e-5)
    # no KL before annealing starts (step 0)
    crit.step = 0
    total0, _ = _by_hand(z, y, term, 0.0)
    assert crit(z, y).item() == pytest.approx(total0 / count, rel=1e-5)


def test_rows_n_k_work():
    g = torch.Generator().manual_seed(1)
    z = 3 * torch.rand(7, 4, generator=g)
    y = torch.tensor([0, 3, 1, IGN, 2, 2, 0])
    crit = EDLLoss(kl_anneal_iters=0)  # lambda = 1
    total, count = _by_hand(z, y, 'mse', 1.0)
    assert count == 6
    assert crit(z, y).item() == pytest.approx(total / count, rel=1e-5)
    # the same rows as 1x1 maps give the same loss
    assert crit(z[:, :, None, None], y[:, None, None]).item() == pytest.approx(total / count, rel=1e-5)


def test_step_and_anneal_settings_drive_kl_factor():
    crit = EDLLoss(kl_weight=0.5, kl_anneal_iters=200, kl_anneal_start=100)
    assert crit.step == 0 and crit.evidential is True
    assert crit.kl_factor() == 0.0
    for t, want in [(0, 0.0), (100, 0.0), (150, 0.125), (200, 0.25), (300, 0.5), (10_000, 0.5)]:
        crit.step = t
        assert crit.kl_factor() == pytest.approx(want), t
        assert crit.kl_factor(step=t) == pytest.approx(want)
    crit.step = 0
    assert crit.kl_factor(step=250) == pytest.approx(0.375)  # explicit step overrides the attribute
    nk = EDLLoss(kl_anneal_iters=0)
    assert nk.kl_factor() == 1.0 and nk.kl_factor(5) == 1.0  # no annealing
    assert EDLLoss(kl_weight=0.0).kl_factor(10 ** 6) == 0.0


def test_step_changes_the_loss():
    z, y = _data(seed=2)
    crit = EDLLoss(data_term='log', kl_anneal_iters=100)
    crit.step = 0
    a = crit(z, y).item()
    crit.step = 50
    b = crit(z, y).item()
    crit.step = 100
    c = crit(z, y).item()
    assert a < b < c
    assert b - a == pytest.approx((c - a) / 2, rel=1e-4)  # linear in lambda


def test_no_kl_before_anneal_start_without_annealing():
    crit = EDLLoss(kl_anneal_iters=0, kl_anneal_start=100)
    assert crit.kl_factor(step=50) == 0.0  # spec: lambda = kl_weight * min(1, (t - start) / T), 0 before start
    assert crit.kl_factor(step=100) == 1.0


def test_stage_one_is_cross_entropy():
    g = torch.Generator().manual_seed(3)
    f = 4 * torch.randn(2, 3, 3, 4, generator=g)  # plain logits, negative values allowed
    _, y = _data()
    crit = EDLLoss()
    crit.evidential = False
    want = F.cross_entropy(f, y, ignore_index=IGN)
    assert crit(f, y).item() == pytest.approx(want.item(), rel=1e-6)
    rows, ry = f[:, :, 0, 0], torch.tensor([2, IGN])
    assert crit(rows, ry).item() == pytest.approx(F.cross_entropy(rows, ry, ignore_index=IGN).item(), rel=1e-6)
    crit.step = 10 ** 6  # the KL schedule plays no part in stage 1
    assert crit(f, y).item() == pytest.approx(want.item(), rel=1e-6)


def test_weight_map_and_avg_non_ignore():
    z, y = _data(seed=4)
    g = torch.Generator().manual_seed(5)
    wmap = torch.rand(2, 3, 4, generator=g)
    crit = EDLLoss(data_term='digamma', kl_anneal_iters=0)
    per_pixel = torch.zeros(2, 3, 4, dtype=D64)
    for i in range(2):
        for r in range(3):
            for c in range(4):
                if y[i, r, c] != IGN:
                    per_pixel[i, r, c] = _by_hand(z[i:i + 1, :, r:r + 1, c:c + 1], y[i:i + 1, r:r + 1, c:c + 1],
                                                  'digamma', 1.0)[0]
    valid = (y != IGN).double()
    n_valid = int(valid.sum())
    # weight: sum(loss * w) / number of valid pixels (mmseg divides by the count, not the weight sum)
    want = (per_pixel * wmap.double() * valid).sum().item() / n_valid
    assert crit(z, y, weight=wmap).item() == pytest.approx(want, rel=1e-5)
    assert crit(z, y, weight=wmap[:, None]).item() == pytest.approx(want, rel=1e-5)  # (N, 1, H, W)
    with pytest.raises(ValueError, match='EDLLoss: weight shape'):
        crit(z, y, weight=wmap[:, :2])
    # avg_non_ignore=False: divide by all N*H*W pixels
    crit_all = EDLLoss(data_term='digamma', kl_anneal_iters=0, avg_non_ignore=False)
    assert crit_all(z, y).item() == pytest.approx(per_pixel.sum().item() / 24, rel=1e-5)
    # all pixels ignored: 0, not NaN
    assert crit(z, torch.full_like(y, IGN)).item() == 0.0
    # a different ignore_index
    y7 = torch.where(y == IGN, torch.full_like(y, 7), y)
    crit7 = EDLLoss(data_term='digamma', kl_anneal_iters=0)
    assert crit7(z, y7, ignore_index=7).item() == pytest.approx(per_pixel.sum().item() / n_valid, rel=1e-5)


def test_labels_with_singleton_channel():
    z, y = _data(seed=6)
    crit = EDLLoss()
    assert crit(z, y[:, None]).item() == pytest.approx(crit(z, y).item(), rel=1e-7)


def test_gradient_flows_to_logits():
    g = torch.Generator().manual_seed(7)
    f = torch.randn(2, 3, 2, 2, generator=g, requires_grad=True)
    y = torch.randint(0, 3, (2, 2, 2), generator=g)
    loss = EDLLoss(kl_anneal_iters=0)(log_alpha(f, 'softplus'), y)
    loss.backward()
    assert f.grad is not None and bool(torch.isfinite(f.grad).all()) and float(f.grad.abs().sum()) > 0


# ---------------------------------------------------------------------------- errors
def test_negative_inputs_while_evidential_name_the_edl_layer():
    z, y = _data()
    z = z - 0.5
    with pytest.raises(ValueError, match=r'EDLLoss needs log-alpha channels \(>= 0\).*EDLLayer'):
        EDLLoss()(z, y)
    crit = EDLLoss()
    crit.evidential = False
    crit(z, y)  # plain logits are fine in stage 1


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_inputs_raise(bad):
    z, y = _data()
    z[1, 2, 0, 3] = bad
    for evidential in (True, False):
        crit = EDLLoss()
        crit.evidential = evidential
        with pytest.raises(ValueError, match=r'EDLLoss: cls_score holds 1 non-finite values.*exp_clamp'):
            crit(z, y)


def test_labels_out_of_range_raise_label_range_error_with_sample():
    z, y = _data(n=3)
    y[2, 1, 1] = 3  # K = 3: labels 0..2
    with pytest.raises(LabelRangeError, match=r'EDLLoss: labels must be 0\.\.2 or ignore_index=255; got \[3\] '
                       r'\(sample 2 of the batch\)') as info:
        EDLLoss()(z, y)
    assert info.value.sample == 2 and info.value.value == 3
    y[2, 1, 1] = 0
    y[1, 0, 0] = -1
    with pytest.raises(LabelRangeError) as info:
        EDLLoss()(z, y)
    assert info.value.sample == 1 and info.value.value == -1
    assert isinstance(info.value, ValueError)


def test_bad_shapes_and_dtypes_raise():
    z, y = _data()
    with pytest.raises(ValueError, match='label shape'):
        EDLLoss()(z, y[:, :2])
    with pytest.raises(ValueError, match='labels must be integer'):
        EDLLoss()(z, y.float())
    with pytest.raises(ValueError, match='cls_score must be float'):
        EDLLoss()(torch.ones(2, 3, 3, 4, dtype=torch.long), y)
    with pytest.raises(ValueError, match='cls_score must be float'):
        EDLLoss()(torch.ones(3), torch.zeros(3, dtype=torch.long))


def test_unknown_kwargs_raise_type_error_with_delete_hint():
    with pytest.raises(TypeError, match=r"EDLLoss got unknown argument\(s\) 'use_sigmoid'.*_delete_=True"):
        EDLLoss(use_sigmoid=False)
    with pytest.raises(TypeError, match=r"'kl_anneal_iter' \(did you mean 'kl_anneal_iters'\?\)"):
        EDLLoss(kl_anneal_iter=10)


def test_bad_constructor_values_raise():
    with pytest.raises(ValueError, match=r"EDLLoss: data_term must be one of \('mse', 'log', 'digamma'\), got 'ce'"):
        EDLLoss(data_term='ce')
    with pytest.raises(ValueError, match='kl_weight must be >= 0'):
        EDLLoss(kl_weight=-1)
    with pytest.raises(ValueError, match='kl_weight must be >= 0'):
        EDLLoss(kl_weight=float('nan'))
    with pytest.raises(ValueError, match='kl_anneal_iters and kl_anneal_start must be >= 0'):
        EDLLoss(kl_anneal_iters=-1)
    with pytest.raises(ValueError, match='kl_anneal_iters and kl_anneal_start must be >= 0'):
        EDLLoss(kl_anneal_start=-5)


def test_loss_name_and_repr():
    crit = EDLLoss(data_term='log', loss_name='loss_x')
    assert crit.loss_name == 'loss_x' and EDLLoss().loss_name == 'loss_edl'
    assert "data_term='log'" in repr(crit)


def test_edl_loss_keeps_float64():
    z, y = _data(dtype=D64)
    crit = EDLLoss(data_term='digamma', kl_anneal_iters=0)
    total, count = _by_hand(z, y, 'digamma', 1.0)
    assert crit(z, y).item() == pytest.approx(total / count, rel=1e-12)
