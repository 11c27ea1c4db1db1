"""The SC-BCE loss of ASLP (uqseg.core.sc_bce; spec section 1): label perturbation, the expected
and sampled forms, the alpha gradient, special cases and input checks."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from uqseg.core.sc_bce import SCBCELoss, aslp_gradient, perturb_labels, resolve_perturbation

pytestmark = pytest.mark.usefixtures('one_thread')
IGN = 255


def _data(n=3, h=6, w=5, seed=0, ignore_frac=0.2, scale=2.0, dtype=torch.float64):
    """Logits (N,1,H,W) and labels (N,H,W) in {0,1,IGN}; image i has a different ignore count."""
    g = torch.Generator().manual_seed(seed)
    z = (scale * torch.randn(n, 1, h, w, generator=g)).to(dtype)
    y = torch.randint(0, 2, (n, h, w), generator=g)
    ign = torch.rand(n, h, w, generator=g) < ignore_frac
    ign[0, 0, :] = True  # make the valid counts differ between images
    y[ign] = IGN
    return z, y


def _bce_mean(z, t, valid):
    """Pooled mean over valid pixels of BCE(z, t)."""
    loss = F.binary_cross_entropy_with_logits(z[:, 0], t.to(z.dtype), reduction='none')
    return (loss * valid).sum() / valid.sum()


# ---------------------------------------------------------------------------- perturbation
def test_perturb_labels_hand_worked_targets():
    y = torch.tensor([0.0, 1.0])
    assert perturb_labels(y).tolist() == [1.0, 0.0]  # HI default
    assert perturb_labels(y, perturbation='SI').tolist() == [0.75, 0.25]
    assert perturb_labels(y, perturbation='M').tolist() == [0.5, 0.5]
    assert perturb_labels(y, beta=0.0).tolist() == [0.0, 1.0]
    assert perturb_labels(y, 0.5).tolist() == [0.25, 0.75]
    assert resolve_perturbation('DM') == (1.0, True)
    assert resolve_perturbation(1.5) == (1.5, False)
    assert resolve_perturbation('HI', 1.5) == (1.5, False)  # explicit beta overrides default HI


def test_dm_noise_is_per_pixel_truncated_and_centred():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (4, 64, 64), generator=g).float()
    t = perturb_labels(y, perturbation='DM', generator=g)
    assert t.min() >= 0.25 and t.max() <= 0.75
    e = (t - 0.5).flatten()
    assert e.unique().numel() > 0.99 * e.numel()  # fresh noise per pixel, not per image
    # truncated N(0,1) on [-.25,.25]: mean 0, variance slightly below the uniform's 1/48
    se = e.std() / math.sqrt(e.numel())
    assert abs(e.mean()) < 4 * se
    var_tn = 1 - 2 * 0.25 * math.exp(-0.25 ** 2 / 2) / math.sqrt(2 * math.pi) / (
        math.erf(0.25 / math.sqrt(2)))
    assert e.var().item() == pytest.approx(var_tn, rel=0.03)
    # reproducible with a seeded generator
    t1 = perturb_labels(y, perturbation='DM', generator=torch.Generator().manual_seed(5))
    t2 = perturb_labels(y, perturbation='DM', generator=torch.Generator().manual_seed(5))
    assert torch.equal(t1, t2)


@settings(max_examples=60, deadline=None)
@given(beta=st.floats(0.0, 2.0),
       y=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=16),
       name=st.sampled_from([None, 'HI', 'SI', 'M', 'DM']),
       seed=st.integers(0, 2 ** 16))
def test_targets_stay_in_unit_interval(beta, y, name, seed):
    yt = torch.tensor(y, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    if name is None:
        t = perturb_labels(yt, beta)
    else:
        t = perturb_labels(yt, perturbation=name, generator=g)
    assert t.shape == yt.shape
    assert bool(((t >= 0) & (t <= 1)).all()), (beta, name, t)
    yb = (yt > 0.5).double()  # binary labels: exact formula
    if name is None:
        torch.testing.assert_close(perturb_labels(yb, beta),
                                   (1 - beta / 2) * yb + beta / 2 * (1 - yb))


# ---------------------------------------------------------------------------- expected mode
def test_expected_mode_hand_worked():
    # one pixel, s = 0.75, y = 1, alpha 0.5, beta 2: (1-1) BCE + 0.5 CAL = 0.5 log(16/3)
    z = torch.tensor([[[[math.log(3.0)]]]], dtype=torch.float64)
    y = torch.ones(1, 1, 1, dtype=torch.long)
    loss = SCBCELoss(mode='expected', alpha=0.5)(z, y)
    assert loss.item() == pytest.approx(0.5 * math.log(16 / 3), rel=1e-12)
    # z = 0: every target costs log 2
    loss0 = SCBCELoss(mode='expected', alpha=0.7, perturbation='SI')(
        torch.zeros(2, 1, 3, 3), torch.ones(2, 3, 3, dtype=torch.long))
    assert loss0.item() == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize('perturbation', ['HI', 'SI', 'M', 0.3])
def test_expected_closed_form_equals_mixture_and_is_stable(perturbation):
    z, y = _data(scale=30.0)  # large logits: sigmoid saturates in float64 for naive formulas
    alpha = torch.tensor([0.0, 0.35, 1.0], dtype=torch.float64)
    loss = SCBCELoss(perturbation, mode='expected')(z, y, alpha=alpha)
    beta, _ = resolve_perturbation(perturbation)
    valid = (y != IGN).double()
    y0 = torch.where(y == IGN, 0, y).double()
    p = perturb_labels(y0, beta)
    a = alpha.view(-1, 1, 1)
    def bce(t):
        return F.binary_cross_entropy_with_logits(z[:, 0], t, reduction='none')

    ref = (((1 - a) * bce(y0) + a * bce(p)) * valid).sum() / valid.sum()
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('perturbation', ['HI', 'SI', 'M', 'DM'])
def test_expected_equals_monte_carlo_mean_of_sample_mode(perturbation):
    z, y = _data(n=3, h=5, w=5, seed=2)
    alpha = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    exp_loss = SCBCELoss(perturbation, mode='expected')(z, y, alpha=alpha).item()
    sampler = SCBCELoss(perturbation, mode='sample')
    g = torch.Generator().manual_seed(123)
    draws = torch.tensor([sampler(z, y, alpha=alpha, generator=g).item() for _ in range(1500)],
                         dtype=torch.float64)
    se = draws.std().item() / math.sqrt(draws.numel())
    assert se > 0
    assert abs(draws.mean().item() - exp_loss) < 4 * se, (draws.mean().item(), exp_loss, se)


# ---------------------------------------------------------------------------- alpha gradient
@pytest.mark.parametrize('perturbation', ['HI', 'SI', 'DM', 0.7])
def test_autograd_alpha_gradient_matches_aslp_gradient(perturbation):
    z, y = _data(n=3, seed=3)
    loss_fn = SCBCELoss(perturbation, mode='expected', loss_weight=1.0)
    beta = loss_fn.beta
    alpha = torch.tensor([0.1, 0.4, 0.0], dtype=torch.float64, requires_grad=True)
    loss = loss_fn(z, y, alpha=alpha)
    (grad,) = torch.autograd.grad(loss, alpha)
    g = aslp_gradient(z, y, beta, IGN)
    torch.testing.assert_close(loss_fn.aslp_gradient(z, y, IGN), g)
    n_i = (y != IGN).flatten(1).sum(1).double()
    assert len(set(n_i.tolist())) > 1  # the pooled-mean factor is actually exercised
    # pooled mean over the batch's valid pixels: dL/dalpha_i = (n_i / n_valid) g_i
    torch.testing.assert_close(grad * n_i.sum() / n_i, g, rtol=1e-10, atol=1e-12)
    # single-image batches: dL/dalpha_i = g_i exactly
    for i in range(3):
        a_i = alpha[i:i + 1].detach().clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(loss_fn(z[i:i + 1], y[i:i + 1], alpha=a_i), a_i)
        assert gi.item() == pytest.approx(g[i].item(), rel=1e-10, abs=1e-12)
    # g_i = mean BCE(z, p) - mean BCE(z, y) over image i's valid pixels
    for i in range(3):
        v = (y[i:i + 1] != IGN).double()
        y0 = torch.where(y[i:i + 1] == IGN, 0, y[i:i + 1]).double()
        direct = _bce_mean(z[i:i + 1], perturb_labels(y0, beta), v) - _bce_mean(z[i:i + 1], y0, v)
        assert g[i].item() == pytest.approx(direct.item(), rel=1e-9, abs=1e-12)


def test_aslp_gradient_all_ignored_image_is_zero_and_detached():
    z, y = _data(n=2)
    y[1] = IGN
    z.requires_grad_(True)
    g = aslp_gradient(z, y, 2.0)
    assert g[1].item() == 0.0 and not g.requires_grad


# ---------------------------------------------------------------------------- special cases
@pytest.mark.parametrize('beta', [0.2, 1.0, 1.5, 2.0])
def test_label_smoothing_special_case(beta):
    z, y = _data(seed=4)
    eps = beta / 2
    valid = (y != IGN).double()
    y0 = torch.where(y == IGN, 0, y).double()
    ls = _bce_mean(z, (1 - eps) * y0 + eps * (1 - y0), valid)
    exp_loss = SCBCELoss(beta=beta, mode='expected', alpha=1.0)(z, y)
    smp_loss = SCBCELoss(beta=beta, mode='sample', alpha=1.0)(z, y)  # Z_i = 1 always
    torch.testing.assert_close(exp_loss, ls, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(smp_loss, ls, rtol=1e-10, atol=1e-12)


def test_disturblabel_special_case():
    z, y = _data(n=1, seed=5)
    rate = 0.3
    valid = (y != IGN).double()
    y0 = torch.where(y == IGN, 0, y).double()
    keep, flip = _bce_mean(z, y0, valid).item(), _bce_mean(z, 1 - y0, valid).item()
    assert abs(keep - flip) > 1e-3
    loss_fn = SCBCELoss('HI', mode='sample', alpha=rate)
    g = torch.Generator().manual_seed(7)
    flips = []
    for _ in range(800):
        v = loss_fn(z, y, generator=g).item()
        is_keep, is_flip = math.isclose(v, keep, rel_tol=1e-9), math.isclose(v, flip, rel_tol=1e-9)
        assert is_keep or is_flip  # whole label map flipped or kept
        flips.append(float(is_flip))
    f = torch.tensor(flips)
    assert abs(f.mean().item() - rate) < 4 * math.sqrt(rate * (1 - rate) / len(flips))
    exp_loss = SCBCELoss('HI', mode='expected', alpha=rate)(z, y).item()
    assert exp_loss == pytest.approx((1 - rate) * keep + rate * flip, rel=1e-10)


# ---------------------------------------------------------------------------- ignore_index
@pytest.mark.parametrize('mode,perturbation', [('expected', 'HI'), ('sample', 'SI'),
                                               ('sample', 'DM')])
def test_ignored_pixels_have_no_effect(mode, perturbation):
    z, y = _data(seed=6, ignore_frac=0.3)
    ign = (y == IGN).unsqueeze(1)
    z2 = torch.where(ign, z + 100 * torch.randn_like(z), z)
    alpha = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    loss_fn = SCBCELoss(perturbation, mode=mode)
    out = []
    for zz in (z, z2):
        zz = zz.clone().requires_grad_(True)
        loss = loss_fn(zz, y, alpha=alpha, generator=torch.Generator().manual_seed(11))
        (gz,) = torch.autograd.grad(loss, zz)
        out.append((loss, gz))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=0, atol=1e-12)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=0, atol=1e-15)
    assert out[0][1][ign].abs().max() == 0
    torch.testing.assert_close(aslp_gradient(z, y), aslp_gradient(z2, y))


def test_avg_non_ignore_loss_weight_and_pixel_weight():
    z, y = _data(seed=8)
    valid = (y != IGN).double()
    w = torch.rand(y.shape, dtype=torch.float64)
    a = SCBCELoss(mode='expected')(z, y, weight=w)
    b = SCBCELoss(mode='expected', avg_non_ignore=False, loss_weight=2.0)(z, y, weight=w)
    y0 = torch.where(y == IGN, 0, y).double()
    loss = F.binary_cross_entropy_with_logits(z[:, 0], y0, reduction='none') * w * valid
    torch.testing.assert_close(a, loss.sum() / valid.sum())
    torch.testing.assert_close(b, 2.0 * loss.sum() / valid.numel())
    # (N, H, W) logits are accepted too
    torch.testing.assert_close(SCBCELoss()(z[:, 0], y, weight=w), a)


# ---------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize('kwargs,match', [
    (dict(perturbation='XX'), 'XX'),
    (dict(beta=2.5), '2.5'),
    (dict(perturbation='SI', beta=2.0), 'SI'),
    (dict(perturbation='DM', beta=2.0), 'DM'),
    (dict(mode='mean'), 'mean'),
    (dict(alpha=1.5), '1.5'),
])
def test_bad_constructor_args_raise_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SCBCELoss(**kwargs)


def test_bad_forward_inputs_raise_naming_the_value():
    z, y = _data(n=2, dtype=torch.float32)
    loss = SCBCELoss()
    bad = y.clone()
    bad[0, 1, 1] = 3
    with pytest.raises(ValueError, match=r'\[3\]'):
        loss(z, bad)
    with pytest.raises(ValueError, match='2 channels'):
        loss(torch.zeros(2, 2, 6, 5), y)
    with pytest.raises(ValueError, match=r'\(2, 6, 5, 1, 1\)'):
        loss(torch.zeros(2, 6, 5, 1, 1), y)
    with pytest.raises(ValueError, match='1.5'):
        loss(z, y, alpha=torch.tensor([0.1, 1.5]))
    with pytest.raises(ValueError, match='-0.25'):
        loss(z, y, alpha=torch.tensor([-0.25, 0.1]))
    with pytest.raises(ValueError, match=r'\(2,\).*\(3,\)'):
        loss(z, y, alpha=torch.tensor([0.1, 0.1, 0.1]))
    for v in (float('nan'), float('inf'), -float('inf')):
        zz = z.clone()
        zz[1, 0, 2, 2] = v
        with pytest.raises(ValueError, match=f'{v}.*shape'):
            loss(zz, y)
    with pytest.raises(ValueError, match=r'label shape \(2, 6, 4\)'):
        loss(z, y[..., :4])
    with pytest.raises(ValueError, match=r'\[-1\]'):
        aslp_gradient(z, torch.full_like(y, -1))
    with pytest.raises(ValueError, match='1.2'):
        perturb_labels(torch.tensor([0.0, 1.2]))
