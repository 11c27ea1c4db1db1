"""Prototype distances and the IsoMax+ / DisMax logits (uqseg.core.prototype_distance; spec
section 3) against torch.cdist of normalised vectors, zero vectors and gradients."""
import math

import pytest
import torch
import torch.nn.functional as F

from uqseg.core.prototype_distance import dismax_logits, isomax_plus_logits, prototype_distances

pytestmark = pytest.mark.usefixtures('one_thread')
D64 = torch.float64
R2 = math.sqrt(2.0)


def _reference(f_rows, protos, s):
    """|s| * || f/|f| - P/|P| || / sqrt(2) by torch.cdist (rows (N, D) -> (N, K))."""
    return abs(s) * torch.cdist(F.normalize(f_rows, dim=1), F.normalize(protos, dim=1)) / R2


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


@pytest.mark.parametrize('s', [1.0, 2.5, -3.0])
def test_distances_on_rows_match_cdist(s):
    f, p = _rand(20, 6, seed=1), _rand(4, 6, seed=2)
    d = prototype_distances(f, p, torch.tensor([s], dtype=D64))
    assert d.shape == (20, 4) and d.dtype == D64
    assert torch.allclose(d, _reference(f, p, s), rtol=0, atol=1e-6)
    assert bool((d >= 0).all()) and bool((d <= R2 * abs(s) + 1e-12).all())


def test_distances_on_maps_match_cdist():
    f, p = _rand(2, 5, 3, 4, seed=3), _rand(6, 5, seed=4)
    s = torch.tensor([1.7], dtype=D64)
    d = prototype_distances(f, p, s)
    assert d.shape == (2, 6, 3, 4)
    rows = f.movedim(1, -1).reshape(-1, 5)
    want = _reference(rows, p, 1.7).reshape(2, 3, 4, 6).movedim(-1, 1)
    assert torch.allclose(d, want, rtol=0, atol=1e-6)
    # another channel dim: (N, H, W, D) with dim=-1 gives (N, H, W, K)
    d_last = prototype_distances(f.movedim(1, -1), p, s, dim=-1)
    assert torch.allclose(d_last, want.movedim(1, -1), rtol=0, atol=1e-6)


def test_distances_are_scale_and_norm_invariant_in_features_and_prototypes():
    f, p = _rand(10, 4, seed=5), _rand(3, 4, seed=6)
    s = torch.ones(1, dtype=D64)
    d = prototype_distances(f, p, s)
    assert torch.allclose(prototype_distances(7.0 * f, 0.1 * p, s), d, atol=1e-9)
    # opposite directions: distance |s| * 2 / sqrt 2 = sqrt(2) |s|; same direction: 0
    e = torch.eye(2, dtype=D64)
    dd = prototype_distances(torch.stack([e[0], -e[0], e[1]]), e, 3.0 * s)
    want = torch.tensor([[0.0, 3.0], [3 * R2, 3.0], [3.0, 0.0]], dtype=D64)
    assert torch.allclose(dd, want, atol=1e-5)  # the sqrt of a clamped 1e-12 at the zeros


def test_zero_feature_vectors_give_s_over_sqrt2_and_finite_gradients():
    f = _rand(4, 5, seed=7)
    f[1] = 0.0
    f = f.requires_grad_(True)
    p = _rand(3, 5, seed=8).requires_grad_(True)
    s = torch.tensor([2.0], dtype=D64, requires_grad=True)
    d = prototype_distances(f, p, s)
    assert not bool(torch.isnan(d).any())
    assert torch.allclose(d[1], torch.full((3,), 2.0 / R2, dtype=D64), atol=1e-12)
    d.sum().backward()
    for t in (f, p, s):
        assert t.grad is not None and bool(torch.isfinite(t.grad).all()), t.grad
    # a zero pixel of a float32 map, through the DisMax logits
    fm = torch.randn(1, 8, 2, 2)
    fm[0, :, 1, 0] = 0
    fm.requires_grad_(True)
    pm = torch.randn(3, 8, requires_grad=True)
    out = dismax_logits(prototype_distances(fm, pm, torch.ones(1)))
    assert torch.allclose(out[0, :, 1, 0], torch.full((3,), -2 / R2), atol=1e-6)
    out.logsumexp(1).sum().backward()
    assert bool(torch.isfinite(fm.grad).all()) and bool(torch.isfinite(pm.grad).all())


def test_feature_equal_to_a_prototype_has_finite_gradient():
    p = _rand(3, 4, seed=9).requires_grad_(True)
    f = p.detach()[[0, 2]].clone().requires_grad_(True)
    d = prototype_distances(f, p, torch.ones(1, dtype=D64))
    assert d[0, 0].item() < 1e-5 and d[1, 2].item() < 1e-5
    d.sum().backward()
    assert bool(torch.isfinite(f.grad).all()) and bool(torch.isfinite(p.grad).all())
    # float32 too
    p32 = p.detach().float().requires_grad_(True)
    f32 = p32.detach()[[1]].clone().requires_grad_(True)
    prototype_distances(f32, p32, torch.ones(1)).sum().backward()
    assert bool(torch.isfinite(f32.grad).all()) and bool(torch.isfinite(p32.grad).all())


def test_dismax_and_isomax_plus_logits_by_hand():
    d = torch.tensor([[0.2, 0.5, 1.1], [1.0, 1.0, 1.0]], dtype=D64)
    # IsoMax+: -d; DisMax: -(d + mean d), mean of row 0 = 0.6
    assert torch.equal(isomax_plus_logits(d), -d)
    want = torch.tensor([[-0.8, -1.1, -1.7], [-2.0, -2.0, -2.0]], dtype=D64)
    assert torch.allclose(dismax_logits(d), want, atol=1e-12)
    # on a map the mean is over the channel dim
    dm = _rand(2, 3, 4, 5, seed=10).abs()
    assert torch.allclose(dismax_logits(dm, dim=1), -(dm + dm.mean(1, keepdim=True)), atol=1e-12)
    assert torch.allclose(dismax_logits(dm[0], dim=0), -(dm[0] + dm[0].mean(0, keepdim=True)), atol=1e-12)


def test_from_features_logits_are_non_positive_and_mean_term_keeps_training_probabilities():
    f, p = _rand(2, 6, 3, 3, seed=11), _rand(5, 6, seed=12)
    d = prototype_distances(f, p, torch.tensor([4.0], dtype=D64))
    dis, iso = dismax_logits(d), isomax_plus_logits(d)
    assert bool((dis <= 0).all()) and bool((iso <= 0).all())
    # the mean over classes shifts every logit of a pixel equally: same softmax(E * L)
    for e in (1.0, 10.0):
        assert torch.allclose((e * dis).softmax(1), (e * iso).softmax(1), atol=1e-12)
    # reference from cdist, end to end
    rows = f.movedim(1, -1).reshape(-1, 6)
    ref = _reference(rows, p, 4.0)
    assert torch.allclose(dis.movedim(1, -1).reshape(-1, 5), -(ref + ref.mean(1, keepdim=True)), atol=1e-6)
