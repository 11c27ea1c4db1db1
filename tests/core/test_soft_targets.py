"""Soft targets in the core losses (uqseg.core.checks.class_targets; spec sections 2-4): float
targets of the scores' shape, rows summing to 1, as a classifier's batch augments make them
(mixup, FPR mosaics). Checked against torch.distributions and hand-written formulas, one-hot rows
against the integer-label path, and gradients against finite differences (gradcheck, float64)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, Dirichlet, kl_divergence

from uqseg.core.checks import SOFT_TARGET_TOL, class_labels, class_targets, is_soft_target, soft_targets
from uqseg.core.dismax_loss import DisMaxLoss
from uqseg.core.edl_loss import EDLLoss
from uqseg.core.ldl_loss import LDLLoss

pytestmark = pytest.mark.usefixtures('one_thread')


def _soft(n=6, k=4, seed=0, dtype=torch.float32, extra=()):
    """Rows of a Dirichlet(1) sample with a zero entry in row 0 (0 log 0 must be 0)."""
    g = torch.Generator().manual_seed(seed)
    q = -torch.log(torch.rand((n, k) + extra, generator=g, dtype=torch.float64))
    q[0, 0] = 0
    return (q / q.sum(1, keepdim=True)).to(dtype)


def _mix(a, b, lam, k):
    """mixup of the one-hot rows of labels a and b."""
    return lam * F.one_hot(a, k).double() + (1 - lam) * F.one_hot(b, k).double()


# ------------------------------------------------------------------------------ the shared check
def test_class_targets_reads_integer_labels_as_before_and_float_rows_as_soft_targets():
    shape = torch.Size((5, 3))
    y = torch.tensor([0, 2, 255, 1, 1])
    got, valid, soft = class_targets(y, shape, 3, 255, 'L')
    want, want_valid = class_labels(y, shape, 3, 255, 'L')
    assert not soft and torch.equal(got, want) and torch.equal(valid, want_valid)
    q = _soft(5, 3)
    got, valid, soft = class_targets(q, shape, 3, 255, 'L')
    assert soft and got is q and valid.shape == (5,) and bool(valid.all())
    # maps: (N, K, H, W) soft targets, a valid mask (N, H, W)
    qm = _soft(2, 3, extra=(4, 5))
    _, valid, soft = class_targets(qm, torch.Size((2, 3, 4, 5)), 3, 255, 'L')
    assert soft and valid.shape == (2, 4, 5)
    # what is not soft: integer (N, K) rows, float (N,) labels, a one-channel (binary sigmoid) head
    assert not is_soft_target(torch.ones(5, 3, dtype=torch.long), shape)
    assert not is_soft_target(torch.ones(5), shape)
    assert not is_soft_target(torch.ones(5, 1), torch.Size((5, 1)))
    with pytest.raises(ValueError, match='L: labels must be integer class indices'):
        class_targets(torch.ones(5), shape, 3, 255, 'L')


@pytest.mark.parametrize('edit,match', [
    (lambda q: q.__setitem__((2, 1), float('nan')), r'DisMaxLoss: soft targets must be finite, got nan at 1 '
                                                    r'position\(s\) \(sample 2 of the batch\)'),
    (lambda q: q.__setitem__((3, 0), float('inf')), r'must be finite, got inf .*sample 3'),
    (lambda q: q[4].copy_(torch.tensor([1.1, -0.1, 0.0])), r'DisMaxLoss: soft targets must be >= 0, got -0.1 '
                                                          r'\(sample 4 of the batch\)'),
    (lambda q: q[1].mul_(0.9), r'DisMaxLoss: soft targets must sum to 1 over the classes \(dim 1, tolerance '
                               r'0.0001\), got a sum of 0.9 \(sample 1 of the batch\)'),
])
def test_bad_soft_targets_raise_naming_the_loss_the_value_and_the_sample(edit, match):
    q = _soft(6, 3)
    edit(q)
    with pytest.raises(ValueError, match=match):
        DisMaxLoss()(-torch.rand(6, 3), q)


def test_soft_target_shape_tolerance_and_every_loss_names_itself():
    z = torch.rand(4, 3)
    with pytest.raises(ValueError, match=r"EDLLoss: soft targets of shape \(4, 5\) do not match the scores \(4, 3\)"):
        EDLLoss()(z, _soft(4, 5))
    q = _soft(4, 3, dtype=torch.float64)
    q[2] *= 1 + SOFT_TARGET_TOL / 2  # inside the tolerance
    EDLLoss()(z, q)
    q[2] *= 1 + 3 * SOFT_TARGET_TOL
    with pytest.raises(ValueError, match='EDLLoss: soft targets must sum to 1'):
        EDLLoss()(z, q)
    with pytest.raises(ValueError, match='LDLLoss: soft targets must be >= 0'):
        LDLLoss(teacher_weight=0)(z, -_soft(4, 3))
    with pytest.raises(ValueError, match='soft targets must be finite'):
        soft_targets(torch.full((2, 3), float('nan')), torch.Size((2, 3)), 'X')


# ------------------------------------------------------------------------------ DisMax: KL(q || softmax(E z))
@pytest.mark.parametrize('e', [10.0, 2.5])
def test_dismax_soft_rows_are_kl_of_the_target_to_the_training_softmax(e):
    g = torch.Generator().manual_seed(1)
    z = -2 * torch.rand(6, 4, generator=g, dtype=torch.float64)
    q = _soft(6, 4, dtype=torch.float64)
    want = kl_divergence(Categorical(probs=q), Categorical(logits=e * z)).mean()
    got = DisMaxLoss(entropic_scale=e)(z, q)
    assert got.dtype == torch.float64 and got.item() == pytest.approx(want.item(), rel=1e-10)
    # by hand: sum q (log q - log p), 0 log 0 = 0
    logp = torch.log_softmax(e * z, 1)
    by_hand = sum(sum(q[i, j] * (math.log(q[i, j]) - logp[i, j]) for j in range(4) if q[i, j] > 0)
                  for i in range(6)) / 6
    assert got.item() == pytest.approx(float(by_hand), rel=1e-10)


def test_dismax_one_hot_rows_equal_the_label_path_and_a_mixup_row_is_its_two_cross_entropies_less_h():
    g = torch.Generator().manual_seed(2)
    z = -torch.rand(5, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 1, 0])
    crit = DisMaxLoss()
    assert crit(z, F.one_hot(y, 3).double()).item() == pytest.approx(crit(z, y).item(), rel=1e-12)
    a, b, lam = torch.tensor([0, 1]), torch.tensor([2, 1]), 0.3
    q = _mix(a, b, lam, 3)
    ce = F.cross_entropy(10 * z[:2], a, reduction='none'), F.cross_entropy(10 * z[:2], b, reduction='none')
    h = torch.tensor([-(lam * math.log(lam) + (1 - lam) * math.log(1 - lam)), 0.0], dtype=torch.float64)
    want = lam * ce[0] + (1 - lam) * ce[1] - h  # row 1 mixes class 1 with itself: a one-hot row
    assert torch.allclose(crit(z[:2], q, reduction_override='none'), want, rtol=1e-12)


def test_dismax_fpr_batch_is_the_papers_half_and_half_loss():
    # first half: one-hot labels; second half: 2x2 mosaics with 1/4 of each quadrant's one-hot
    g = torch.Generator().manual_seed(3)
    k, n = 5, 8
    z = -torch.rand(n, k, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (n // 2,), generator=g)
    quads = torch.randint(0, k, (n // 2, 4), generator=g)
    q = torch.cat([F.one_hot(labels, k).double(), F.one_hot(quads, k).double().mean(1)])
    ce_first = F.cross_entropy(10 * z[:n // 2], labels)
    kl_second = kl_divergence(Categorical(probs=q[n // 2:]), Categorical(logits=10 * z[n // 2:])).mean()
    assert DisMaxLoss()(z, q).item() == pytest.approx(((ce_first + kl_second) / 2).item(), rel=1e-10)


def test_dismax_soft_maps_weight_half_precision_and_the_distance_check():
    g = torch.Generator().manual_seed(4)
    z = -torch.rand(2, 3, 4, 5, generator=g)
    q = _soft(2, 3, extra=(4, 5))
    kl = (q * (q.clamp_min(1e-30).log() - torch.log_softmax(10 * z, 1))).sum(1)
    crit = DisMaxLoss()
    assert torch.allclose(crit(z, q), kl.mean(), rtol=1e-5)
    wmap = torch.rand(2, 4, 5, generator=g)
    assert torch.allclose(crit(z, q, weight=wmap), (kl * wmap).mean(), rtol=1e-5)
    assert torch.allclose(crit(z, q, reduction_override='none'), kl, rtol=1e-5, atol=1e-7)
    got = crit(z.half(), q)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    with pytest.raises(ValueError, match='DisMaxLoss needs distance logits'):
        crit(z + 1, q)


# ------------------------------------------------------------------------------ EDL: y = q
def _edl_by_hand(z, q, kind, lam):
    """EDL loss per row, soft target q in place of the one-hot: data term by the paper's formulas and
    the KL term of torch.distributions' Dirichlet."""
    alpha = z.exp()
    s = alpha.sum(1, keepdim=True)
    p = alpha / s
    if kind == 'mse':
        data = ((q - p) ** 2 + p * (1 - p) / (s + 1)).sum(1)
    elif kind == 'log':
        data = (q * (s.log() - alpha.log())).sum(1)
    else:
        data = (q * (torch.digamma(s) - torch.digamma(alpha))).sum(1)
    tilde = q + (1 - q) * alpha
    kl = kl_divergence(Dirichlet(tilde), Dirichlet(torch.ones_like(tilde)))
    return data + lam * kl


@pytest.mark.parametrize('kind', ['mse', 'log', 'digamma'])
@pytest.mark.parametrize('lam', [0.0, 0.4, 1.0])
def test_edl_soft_targets_replace_the_one_hot_in_the_data_term_and_the_kl(kind, lam):
    g = torch.Generator().manual_seed(5)
    z = 2 * torch.rand(6, 4, generator=g, dtype=torch.float64)
    q = _soft(6, 4, dtype=torch.float64)
    crit = EDLLoss(data_term=kind, kl_weight=lam, kl_anneal_iters=0)
    want = _edl_by_hand(z, q, kind, lam)
    assert torch.allclose(crit(z, q, reduction_override='none'), want, rtol=1e-10)
    assert crit(z, q).item() == pytest.approx(want.mean().item(), rel=1e-10)
    # one-hot rows: the label path
    y = torch.tensor([0, 3, 1, 2, 2, 0])
    assert crit(z, F.one_hot(y, 4).double()).item() == pytest.approx(crit(z, y).item(), rel=1e-12)


def test_edl_stage_one_soft_cross_entropy_and_the_log_alpha_check():
    g = torch.Generator().manual_seed(6)
    f = torch.randn(5, 3, generator=g, dtype=torch.float64)
    q = _soft(5, 3, dtype=torch.float64)
    crit = EDLLoss(kl_anneal_iters=0)
    crit.evidential = False
    want = -(q * torch.log_softmax(f, 1)).sum(1).mean()
    assert crit(f, q).item() == pytest.approx(want.item(), rel=1e-12)
    crit.evidential = True
    with pytest.raises(ValueError, match='EDLLoss needs log-alpha channels'):
        crit(f, q)
    maps = _soft(2, 3, extra=(2, 2))
    got = EDLLoss(kl_anneal_iters=0)(torch.rand(2, 3, 2, 2).half(), maps)
    assert got.dtype == torch.float32 and torch.isfinite(got)


# ------------------------------------------------------------------------------ LDL: (1 - w) q + w softmax(t / tau)
@pytest.mark.parametrize('w,tau', [(0.0, 1.0), (0.5, 1.0), (0.7, 2.0), (1.0, 0.5)])
def test_ldl_soft_targets_mix_with_the_teacher(w, tau):
    g = torch.Generator().manual_seed(7)
    z, t = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    q = _soft(6, 4, dtype=torch.float64)
    target = (1 - w) * q + w * torch.softmax(t / tau, 1)
    want = F.cross_entropy(z, target)
    crit = LDLLoss(teacher_weight=w, teacher_temperature=tau)
    assert crit(z, q, teacher_logits=t).item() == pytest.approx(want.item(), rel=1e-12)
    y = torch.tensor([0, 1, 3, 2, 0, 1])
    assert crit(z, F.one_hot(y, 4).double(), teacher_logits=t).item() == pytest.approx(
        crit(z, y, teacher_logits=t).item(), rel=1e-12)
    if w == 0:  # no teacher needed: cross-entropy to q
        assert crit(z, q).item() == pytest.approx(F.cross_entropy(z, q).item(), rel=1e-12)


def test_ldl_soft_targets_warm_up_and_maps():
    g = torch.Generator().manual_seed(8)
    z, t = torch.randn(2, 3, 2, 2, generator=g), torch.randn(2, 3, 2, 2, generator=g)
    q = _soft(2, 3, extra=(2, 2))
    crit = LDLLoss(teacher_weight=0.8, warmup_iters=10)
    crit.step = 5
    target = 0.6 * q + 0.4 * t.softmax(1)
    assert torch.allclose(crit(z, q, teacher_logits=t), F.cross_entropy(z, target), rtol=1e-5)


# ------------------------------------------------------------------------------ gradients
def _gradcheck(crit, z, q, **kw):
    assert torch.autograd.gradcheck(lambda x: crit(x, q, **kw), (z,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_soft_target_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(9)
    q = _soft(4, 3, dtype=torch.float64)
    z_dist = (-0.1 - 1.5 * torch.rand(4, 3, generator=g, dtype=torch.float64)).requires_grad_()
    _gradcheck(DisMaxLoss(entropic_scale=3.0), z_dist, q)
    z_edl = (0.1 + 1.5 * torch.rand(4, 3, generator=g, dtype=torch.float64)).requires_grad_()
    for kind in ('mse', 'log', 'digamma'):
        _gradcheck(EDLLoss(data_term=kind, kl_weight=0.7, kl_anneal_iters=0), z_edl, q)
    stage1 = EDLLoss()
    stage1.evidential = False
    _gradcheck(stage1, z_edl, q)
    t = torch.randn(4, 3, generator=g, dtype=torch.float64)
    _gradcheck(LDLLoss(teacher_weight=0.5, teacher_temperature=2.0), torch.randn(4, 3, dtype=torch.float64,
                                                                                 generator=g).requires_grad_(),
               q, teacher_logits=t)
    # and the gradient of the DisMax KL is E (softmax(E z) - q), the cross-entropy's
    z = z_dist.detach().clone().requires_grad_()
    DisMaxLoss(entropic_scale=3.0)(z, q, reduction_override='none').sum().backward()
    assert torch.allclose(z.grad, 3.0 * (torch.softmax(3.0 * z.detach(), 1) - q), atol=1e-12)
