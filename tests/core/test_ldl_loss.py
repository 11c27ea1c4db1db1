"""LDLLoss (uqseg.core.ldl_loss): cross-entropy to the one-hot label mixed with a teacher's soft labels.
Checked against torch's cross-entropy / BCE where the target is the label, hand-worked mixed targets,
the warm-up ramp, gradcheck, the 'none' reduction, and the errors it raises."""
import math

import pytest
import torch
import torch.nn.functional as F

from uqseg.core.ldl_loss import LDLLoss, ldl_targets, ramp_weight, soft_cross_entropy_map

pytestmark = pytest.mark.usefixtures('one_thread')
IGN = 255


def _batch(n=2, k=4, h=5, w=6, seed=0, dtype=torch.float32, frac_ignored=0.2):
    g = torch.Generator().manual_seed(seed)
    z = (2 * torch.randn(n, k, h, w, generator=g)).to(dtype)
    t = (2 * torch.randn(n, k, h, w, generator=g)).to(dtype)
    y = torch.randint(0, max(k, 2), (n, h, w), generator=g)
    y[torch.rand(n, h, w, generator=g) < frac_ignored] = IGN
    assert (y == IGN).any() and (y != IGN).any()
    return z, t, y


def _onehot_teacher(y, k, margin=1e4):
    """Teacher logits whose softmax is exactly one-hot at the label (any class at ignored pixels)."""
    yy = torch.where(y == IGN, torch.zeros_like(y), y)
    return margin * (2 * F.one_hot(yy, k).movedim(-1, 1).float() - 1)


# ---------------------------------------------------------------------------------------------
# the label alone: cross-entropy / BCE
# ---------------------------------------------------------------------------------------------
def test_weight_zero_without_teacher_is_cross_entropy_over_valid_pixels():
    z, _, y = _batch()
    loss = LDLLoss(teacher_weight=0.0)(z, y, ignore_index=IGN)
    ref = F.cross_entropy(z, y, ignore_index=IGN)  # mean over non-ignored pixels
    assert torch.allclose(loss, ref, rtol=1e-5, atol=1e-6)


def test_weight_zero_with_a_teacher_is_cross_entropy():
    z, t, y = _batch(seed=1)
    loss = LDLLoss(teacher_weight=0.0, teacher_temperature=3.0)(z, y, ignore_index=IGN, teacher_logits=t)
    assert torch.allclose(loss, F.cross_entropy(z, y, ignore_index=IGN), rtol=1e-5, atol=1e-6)


def test_teacher_logits_attribute_is_used_like_the_argument():
    z, t, y = _batch(seed=2)
    loss = LDLLoss(teacher_weight=0.7)
    by_arg = loss(z, y, ignore_index=IGN, teacher_logits=t)
    loss.teacher_logits = t
    by_attr = loss(z, y, ignore_index=IGN)
    assert torch.allclose(by_arg, by_attr)
    # and it is not the cross-entropy (the teacher matters at this weight)
    assert not torch.allclose(by_arg, F.cross_entropy(z, y, ignore_index=IGN), rtol=1e-3)


@pytest.mark.parametrize('weight', [0.3, 1.0])
@pytest.mark.parametrize('tau', [1.0, 2.5])
def test_one_hot_teacher_gives_cross_entropy_at_any_weight(weight, tau):
    z, _, y = _batch(k=3, seed=3)
    t = _onehot_teacher(y, 3)
    assert torch.equal((t / tau).softmax(1), F.one_hot(torch.where(y == IGN, 0, y), 3).movedim(-1, 1).float())
    loss = LDLLoss(teacher_weight=weight, teacher_temperature=tau)(z, y, ignore_index=IGN, teacher_logits=t)
    assert torch.allclose(loss, F.cross_entropy(z, y, ignore_index=IGN), rtol=1e-5, atol=1e-6)


def test_binary_one_channel_weight_zero_is_bce_with_logits():
    z, t, y = _batch(k=1, seed=4)
    loss = LDLLoss(teacher_weight=0.0)(z, y, ignore_index=IGN, teacher_logits=t)
    valid = y != IGN
    ref = F.binary_cross_entropy_with_logits(z[:, 0][valid], y[valid].float())
    assert torch.allclose(loss, ref, rtol=1e-5, atol=1e-6)


def test_binary_one_channel_soft_target_worked_by_hand():
    # weight 0.5, tau 2: q = 0.5 y + 0.5 sigmoid(t / 2); loss = -(q log s(z) + (1 - q) log(1 - s(z)))
    z = torch.tensor([[[[0.3, -1.2, 2.0], [0.0, 4.0, -0.5]]]])
    t = torch.tensor([[[[1.0, 2.0, -3.0], [0.5, 100.0, 6.0]]]])
    y = torch.tensor([[[1, 0, 1], [IGN, 0, 1]]])
    total, n = 0.0, 0
    for i in range(2):
        for j in range(3):
            if int(y[0, i, j]) == IGN:
                continue
            q = 0.5 * int(y[0, i, j]) + 0.5 / (1 + math.exp(-float(t[0, 0, i, j]) / 2))
            s = 1 / (1 + math.exp(-float(z[0, 0, i, j])))
            total += -(q * math.log(s) + (1 - q) * math.log(1 - s))
            n += 1
    loss = LDLLoss(teacher_weight=0.5, teacher_temperature=2.0)(z, y, ignore_index=IGN, teacher_logits=t)
    assert float(loss) == pytest.approx(total / n, rel=1e-5)


def test_binary_label_with_a_channel_dimension_is_accepted():
    z, t, y = _batch(k=1, seed=5)
    loss = LDLLoss(teacher_weight=0.4)
    assert torch.allclose(loss(z, y, ignore_index=IGN, teacher_logits=t),
                          loss(z, y[:, None], ignore_index=IGN, teacher_logits=t))


# ---------------------------------------------------------------------------------------------
# the mixed target
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('tau', [1.0, 2.0])
def test_multiclass_mixed_target_worked_on_one_pixel(tau):
    # teacher softmax(t / tau) = [1/4, 1/2, 1/4]; w = 1/2, label 0: q = [5/8, 1/4, 1/8]
    # student softmax(z) = [1/2, 1/4, 1/4]: loss = 5/8 ln 2 + 1/4 ln 4 + 1/8 ln 4 = 11/8 ln 2
    t = (tau * torch.log(torch.tensor([1.0, 2.0, 1.0]))).view(1, 3, 1, 1)
    z = torch.log(torch.tensor([2.0, 1.0, 1.0])).view(1, 3, 1, 1)
    y = torch.zeros(1, 1, 1, dtype=torch.long)
    q = ldl_targets(t, y, 0.5, tau)
    assert torch.allclose(q.view(3), torch.tensor([5 / 8, 1 / 4, 1 / 8]))
    loss = LDLLoss(teacher_weight=0.5, teacher_temperature=tau)(z, y, teacher_logits=t)
    assert float(loss) == pytest.approx(11 / 8 * math.log(2), rel=1e-6)


def test_mixed_loss_is_the_mix_of_the_two_cross_entropies():
    # the loss is linear in the target: (1 - w) CE(z, y) + w CE(z, softmax(t / tau))
    z, t, y = _batch(seed=6)
    w, tau = 0.35, 1.7
    valid = y != IGN
    soft = -(((t / tau).softmax(1)) * z.log_softmax(1)).sum(1)
    ref = (1 - w) * F.cross_entropy(z, y, ignore_index=IGN) + w * soft[valid].mean()
    loss = LDLLoss(teacher_weight=w, teacher_temperature=tau)(z, y, ignore_index=IGN, teacher_logits=t)
    assert torch.allclose(loss, ref, rtol=1e-5, atol=1e-6)


def test_soft_cross_entropy_map_matches_torch_with_probability_targets():
    z, t, _ = _batch(seed=7)
    p = t.softmax(1)
    assert torch.allclose(soft_cross_entropy_map(z, p), F.cross_entropy(z, p, reduction='none'), atol=1e-5)
    zb, tb = z[:, :1], torch.sigmoid(t[:, :1])
    assert torch.allclose(soft_cross_entropy_map(zb, tb),
                          F.binary_cross_entropy_with_logits(zb, tb, reduction='none')[:, 0], atol=1e-6)


@pytest.mark.parametrize('k', [1, 4])
def test_teacher_values_at_ignored_pixels_do_not_change_the_loss(k):
    z, t, y = _batch(k=k, seed=8)
    loss = LDLLoss(teacher_weight=0.8, teacher_temperature=1.5)
    a = loss(z, y, ignore_index=IGN, teacher_logits=t)
    t2 = t.clone()
    ign = (y == IGN).unsqueeze(1).expand_as(t2)
    t2[ign] = torch.randn(int(ign.sum())) * 50 + 20
    b = loss(z, y, ignore_index=IGN, teacher_logits=t2)
    assert torch.allclose(a, b, rtol=0, atol=1e-7)
    # while changing the teacher at a valid pixel does
    t3 = t.clone()
    v = (y != IGN).nonzero()[0]
    t3[v[0], :, v[1], v[2]] += torch.arange(k, dtype=t.dtype) * 5 + 3
    assert not torch.allclose(a, loss(z, y, ignore_index=IGN, teacher_logits=t3), rtol=0, atol=1e-6)


def test_avg_non_ignore_false_divides_by_all_pixels_and_loss_weight_scales():
    z, t, y = _batch(seed=9)
    ce_sum = F.cross_entropy(z, y, ignore_index=IGN, reduction='sum')
    loss = LDLLoss(teacher_weight=0.0, avg_non_ignore=False, loss_weight=2.5)(z, y, ignore_index=IGN)
    assert torch.allclose(loss, 2.5 * ce_sum / y.numel(), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# warm-up
# ---------------------------------------------------------------------------------------------
def test_ramp_weight_is_linear_then_constant():
    assert ramp_weight(0.6, 0, 10) == 0.0
    assert ramp_weight(0.6, 5, 10) == pytest.approx(0.3)
    assert ramp_weight(0.6, 10, 10) == pytest.approx(0.6)
    assert ramp_weight(0.6, 1000, 10) == pytest.approx(0.6)
    assert ramp_weight(0.6, 0, 0) == pytest.approx(0.6)  # no warm-up: the weight from the start


def test_current_weight_ramps_and_the_loss_follows():
    z, t, y = _batch(seed=10)
    loss = LDLLoss(teacher_weight=0.6, warmup_iters=10)
    assert loss.current_weight(0) == 0.0
    assert loss.current_weight(5) == pytest.approx(0.3)
    assert loss.current_weight(25) == pytest.approx(0.6)
    assert loss.current_weight() == 0.0  # step defaults to 0
    at0 = loss(z, y, ignore_index=IGN, teacher_logits=t)
    assert torch.allclose(at0, F.cross_entropy(z, y, ignore_index=IGN), rtol=1e-5, atol=1e-6)
    loss.step = 5
    assert loss.current_weight() == pytest.approx(0.3)
    half = LDLLoss(teacher_weight=0.3)(z, y, ignore_index=IGN, teacher_logits=t)
    assert torch.allclose(loss(z, y, ignore_index=IGN, teacher_logits=t), half, rtol=1e-6)
    loss.step = 100
    full = LDLLoss(teacher_weight=0.6)(z, y, ignore_index=IGN, teacher_logits=t)
    assert torch.allclose(loss(z, y, ignore_index=IGN, teacher_logits=t), full, rtol=1e-6)


def test_no_teacher_is_needed_while_the_ramp_is_at_zero():
    z, _, y = _batch(seed=11)
    loss = LDLLoss(teacher_weight=0.5, warmup_iters=100)
    assert torch.allclose(loss(z, y, ignore_index=IGN), F.cross_entropy(z, y, ignore_index=IGN), rtol=1e-5)
    loss.step = 1
    with pytest.raises(RuntimeError, match='EMATeacherHook'):
        loss(z, y, ignore_index=IGN)


# ---------------------------------------------------------------------------------------------
# gradients and the 'none' reduction
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('k', [1, 3])
def test_gradcheck_wrt_student_logits_in_float64(k):
    z, t, y = _batch(n=1, k=k, h=2, w=3, seed=12, dtype=torch.float64)
    z.requires_grad_(True)
    loss = LDLLoss(teacher_weight=0.4, teacher_temperature=2.0, loss_weight=1.3)
    assert torch.autograd.gradcheck(lambda zz: loss(zz, y, ignore_index=IGN, teacher_logits=t), (z,))


def test_gradient_is_softmax_minus_target_over_valid_count():
    z, t, y = _batch(n=1, k=3, h=3, w=3, seed=13, dtype=torch.float64)
    z.requires_grad_(True)
    w, tau = 0.5, 1.0
    LDLLoss(teacher_weight=w, teacher_temperature=tau)(z, y, ignore_index=IGN, teacher_logits=t).backward()
    valid = (y != IGN)
    onehot = F.one_hot(torch.where(valid, y, 0), 3).movedim(-1, 1).double()
    q = (1 - w) * onehot + w * t.softmax(1)
    ref = (z.detach().softmax(1) - q) * valid.unsqueeze(1) / valid.sum()
    assert torch.allclose(z.grad, ref, atol=1e-6)  # the target is built in float32


def test_reduction_none_returns_the_map_zero_at_ignored_pixels():
    z, t, y = _batch(seed=14)
    m = LDLLoss(teacher_weight=0.0)(z, y, ignore_index=IGN, teacher_logits=t, reduction_override='none')
    assert m.shape == y.shape
    assert torch.all(m[y == IGN] == 0)
    ref = F.cross_entropy(z, y, ignore_index=IGN, reduction='none')
    assert torch.allclose(m, ref, atol=1e-5)
    m2 = LDLLoss(teacher_weight=0.5)(z, y, ignore_index=IGN, teacher_logits=t, reduction_override='none')
    assert torch.all(m2[y == IGN] == 0) and torch.all(m2[y != IGN] > 0)
    assert torch.allclose(m2.sum() / (y != IGN).sum(), LDLLoss(teacher_weight=0.5)(z, y, ignore_index=IGN,
                                                                                     teacher_logits=t))


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_missing_teacher_with_positive_weight_names_the_teacher_hook():
    z, _, y = _batch(seed=15)
    with pytest.raises(RuntimeError, match='EMATeacherHook'):
        LDLLoss(teacher_weight=0.5)(z, y, ignore_index=IGN)


def test_teacher_of_another_shape_is_refused():
    z, t, y = _batch(seed=16)
    with pytest.raises(ValueError, match='do not match'):
        LDLLoss(teacher_weight=0.5)(z, y, ignore_index=IGN, teacher_logits=t[:, :3])
    with pytest.raises(ValueError, match='do not match'):
        LDLLoss(teacher_weight=0.5)(z, y, ignore_index=IGN, teacher_logits=t[..., :-1])


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_teacher_is_refused(bad):
    z, t, y = _batch(seed=17)
    t[0, 1, 2, 3] = bad
    with pytest.raises(ValueError, match='NaN/Inf'):
        LDLLoss(teacher_weight=0.5)(z, y, ignore_index=IGN, teacher_logits=t)


@pytest.mark.parametrize('kwargs', [dict(teacher_weight=-0.1), dict(teacher_weight=1.01),
                                    dict(teacher_weight=float('nan')), dict(teacher_temperature=0.0),
                                    dict(teacher_temperature=-1.0), dict(teacher_temperature=float('nan')),
                                    dict(warmup_iters=-1)])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        LDLLoss(**kwargs)


def test_unknown_keyword_is_refused_with_a_suggestion():
    with pytest.raises(TypeError, match='teacher_temprature.*teacher_temperature'):
        LDLLoss(teacher_temprature=2.0)
    with pytest.raises(TypeError, match='use_sigmoid'):
        LDLLoss(use_sigmoid=False)


def test_boundary_weights_are_accepted():
    assert LDLLoss(teacher_weight=0.0).teacher_weight == 0.0
    assert LDLLoss(teacher_weight=1.0).teacher_weight == 1.0
