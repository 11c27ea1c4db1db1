"""EDL's Dirichlet pieces (uqseg.core.evidential; spec section 2): evidence functions, log alpha,
vacuity (exactly 1 at zero evidence, extreme log alpha against a float64 log-space reference), the
three data terms and the KL regulariser against hand-worked values and torch.distributions, the
annealing factor, gradients and the evidence checks."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Dirichlet, kl_divergence

from uqseg.core.edl_loss import EDLLoss
from uqseg.core.evidential import (
    DATA_TERMS,
    DEFAULT_EXP_CLAMP,
    EVIDENCE_FUNCTIONS,
    check_evidence,
    data_term,
    edl_loss_map,
    evidence,
    kl_anneal,
    kl_to_uniform,
    log_alpha,
    strength,
    vacuity,
)
from uqseg.core.loss_reduction import reduce_loss_map
from uqseg.core.scores import raw_score, score_confidence

pytestmark = pytest.mark.usefixtures('one_thread')
D64 = torch.float64


def _t(*v):
    return torch.tensor(v, dtype=D64)


# ---------------------------------------------------------------------------- evidence / log alpha
def test_evidence_functions_by_definition():
    f = _t(-30.0, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0)
    assert torch.equal(evidence(f, 'relu'), _t(0.0, 0.0, 0.0, 0.0, 0.5, 2.0, 30.0))
    assert torch.allclose(evidence(f, 'softplus'), torch.log1p(torch.exp(f)), rtol=1e-12, atol=0)
    # exp of the logits clamped at +-exp_clamp (10 by default, the spec's value)
    c = DEFAULT_EXP_CLAMP
    assert c == 10.0
    want = _t(math.exp(-10), math.exp(-2), math.exp(-0.5), 1.0, math.exp(0.5), math.exp(2), math.exp(10))
    assert torch.allclose(evidence(f, 'exp'), want, rtol=1e-12)
    assert torch.allclose(evidence(f, 'exp', exp_clamp=1.0)[[0, -1]], _t(math.exp(-1), math.e), rtol=1e-12)
    # ELU + 1: exp(f) for f < 0 (ELU(f) = exp(f) - 1), f + 1 otherwise
    want = torch.where(f < 0, torch.exp(f), f + 1)
    assert torch.allclose(evidence(f, 'elu'), want, rtol=1e-12)
    for kind in EVIDENCE_FUNCTIONS:
        assert bool((evidence(f, kind) >= 0).all()), kind


@pytest.mark.parametrize('kind', EVIDENCE_FUNCTIONS)
def test_log_alpha_is_log_of_evidence_plus_one(kind):
    f = torch.linspace(-8, 8, 41, dtype=D64)
    assert torch.allclose(log_alpha(f, kind), torch.log(evidence(f, kind) + 1), rtol=1e-12, atol=1e-14)
    assert bool((log_alpha(f, kind) >= 0).all())
    assert log_alpha(f.float(), kind).dtype == torch.float32


@pytest.mark.parametrize('kind', EVIDENCE_FUNCTIONS)
def test_log_alpha_does_not_overflow_at_large_logits(kind):
    f = torch.tensor([1e4, -1e4, 1e30, -1e30])  # float32
    la = log_alpha(f, kind)
    assert bool(torch.isfinite(la).all()), (kind, la)
    assert bool((la >= 0).all())
    if kind == 'exp':  # log(exp(clamp(1e4)) + 1) = softplus(10), without forming exp(1e4)
        assert la[0].item() == pytest.approx(F.softplus(torch.tensor(10.0, dtype=D64)).item(), rel=1e-6)
        assert la[1].item() == pytest.approx(math.log1p(math.exp(-10)), rel=1e-5)
    else:  # relu, softplus, elu + 1 all grow like f: log alpha ~ log(1e4)
        assert la[0].item() == pytest.approx(math.log(1e4 + 1 + (kind == 'elu')), rel=1e-5)
        assert la[1].item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('kind', EVIDENCE_FUNCTIONS)
def test_softmax_of_log_alpha_is_expected_probability(kind):
    g = torch.Generator().manual_seed(0)
    f = 3 * torch.randn(5, 4, 3, 2, generator=g, dtype=D64)
    alpha = evidence(f, kind) + 1
    s = alpha.sum(1, keepdim=True)
    la = log_alpha(f, kind)
    assert torch.allclose(la.softmax(1), alpha / s, rtol=1e-12)
    assert torch.allclose(strength(la, 1), s[:, 0], rtol=1e-12)
    # rows (N, K): dim=1; maps (K, H, W): dim=0
    assert torch.allclose(strength(la[0], 0), s[0, 0], rtol=1e-12)


def test_vacuity_is_k_over_s_in_unit_interval():
    g = torch.Generator().manual_seed(1)
    f = 4 * torch.randn(6, 5, 3, 3, generator=g, dtype=D64)
    for kind in EVIDENCE_FUNCTIONS:
        alpha = evidence(f, kind) + 1
        u = vacuity(log_alpha(f, kind), dim=1)
        assert torch.allclose(u, 5 / alpha.sum(1), rtol=1e-12)
        assert bool(((u > 0) & (u <= 1)).all())
        assert torch.allclose(vacuity(log_alpha(f[0], kind), dim=0), u[0], rtol=1e-12)
    # K=2, alpha = (3, 1): u = 2 / 4
    assert vacuity(torch.log(_t(3.0, 1.0))[None]).item() == pytest.approx(0.5, rel=1e-12)
    # large evidence: u -> 0 but stays > 0
    assert 0 < vacuity(torch.tensor([[80.0, 0.0]])).item() < 1e-30


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('k', [1, 2, 3, 7, 10, 19, 150, 1000])
def test_zero_evidence_gives_vacuity_one_exactly(k, dtype):
    """Zero evidence (alpha = 1, log alpha = 0): S = K and u = 1 exactly. Exact on every CPU by
    construction: exp(0) = 1, a sum of K ones is K, log(1) = 0 (vacuity no longer goes through
    logsumexp - log K, whose float32 result for seven zeros is one ulp above log 7 on AMD EPYC)."""
    z = torch.zeros(4, k, 3, 2, dtype=dtype)
    assert torch.equal(vacuity(z, dim=1), torch.ones(4, 3, 2, dtype=dtype))
    assert torch.equal(vacuity(z[0], dim=0), torch.ones(3, 2, dtype=dtype))
    assert torch.equal(vacuity(z.movedim(1, -1), dim=-1), torch.ones(4, 3, 2, dtype=dtype))  # not contiguous
    assert torch.equal(strength(z, dim=1), torch.full((4, 3, 2), float(k), dtype=dtype))
    # an EDL layer's zero evidence: relu of negative logits, log1p(0) = 0
    assert torch.equal(vacuity(log_alpha(torch.full((3, k), -5.0, dtype=dtype), 'relu')), torch.ones(3, dtype=dtype))
    # the confidence every metric ranks by: 1 - u = 0 exactly, the least confident of all
    assert torch.equal(score_confidence('vacuity', raw_score('vacuity', z), k), torch.zeros(4, 3, 2, dtype=D64))


def _vacuity_reference(row):
    """K / S from the definition in float64 log space: log S = M + log(sum_j exp(z_j - M)), M = max z."""
    m = max(row)
    if m == -math.inf:
        return 1.0
    log_s = m + math.log(math.fsum(math.exp(x - m) for x in row))
    return min(1.0, math.exp(math.log(len(row)) - log_s))


@pytest.mark.parametrize('rows, dtype, rel', [
    ([[700.0, 0.0, 0.0], [1e4, 0.0], [1e-30] * 5, [1e-8, 0.0, 0.0], [0.0] * 999 + [1e-3],
      [40.0, 39.0, 0.5], [3.0, 1e-300]], D64, 1e-12),
    ([[80.0, 0.0], [88.0, 88.0, 88.0], [1e-6, 0.0, 0.0], [0.0] * 149 + [12.0], [20.0, 19.5, 0.25]],
     torch.float32, 2e-6),
])
def test_vacuity_at_extreme_log_alpha_matches_log_space_reference(rows, dtype, rel):
    """Huge log alpha (S overflows the dtype, K / S tiny or underflowing; float32 [88, 88, 88]:
    S = 4.9e38 > float32 max, u = exp(-88) subnormal), tiny evidence (u just below 1) and many
    classes, against the float64 log-space definition. Tolerances: float64 / float32 rounding of
    exp and log (a few ulp)."""
    for row in rows:
        x = torch.tensor([row], dtype=dtype)
        want = _vacuity_reference([float(v) for v in x[0]])
        got = vacuity(x).item()
        assert got == pytest.approx(want, rel=rel, abs=1e-44), (row, got, want)
        assert 0 <= got <= 1
        s = strength(x).item()
        if math.isfinite(s):
            assert s == pytest.approx(len(row) / want, rel=rel), row


def test_vacuity_outside_log_alpha_ge_0():
    """Inputs no EDL layer produces: alpha < 1 (u > 1 clamped to 1), alpha = 0 (log alpha = -inf),
    alpha = inf (u = 0), NaN propagates."""
    inf, nan = math.inf, math.nan
    x = _t(-1.0, -2.0, 0.0)[None]
    assert vacuity(x).item() == 1.0  # clamp(max=1)
    assert vacuity(_t(-inf, -inf)[None]).item() == 1.0
    assert vacuity(_t(inf, 0.0)[None]).item() == 0.0
    assert vacuity(_t(-inf, 2.0)[None]).item() == pytest.approx(2 / math.exp(2), rel=1e-12)
    assert math.isnan(vacuity(_t(nan, 0.0)[None]).item())


def test_vacuity_gradient():
    """d u / d z_j = -u p_j (u = K / S, p = alpha / S): the shift inside vacuity carries no gradient."""
    g = torch.Generator().manual_seed(9)
    z = (3 * torch.rand(4, 5, generator=g, dtype=D64)).requires_grad_(True)
    assert torch.autograd.gradcheck(vacuity, (z,))
    (grad,) = torch.autograd.grad(vacuity(z).sum(), z)
    alpha = z.detach().exp()
    want = -(5 / alpha.sum(1, keepdim=True)) * alpha / alpha.sum(1, keepdim=True)
    assert torch.allclose(grad, want, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------- data terms and KL
def test_data_terms_hand_worked():
    # K=3, alpha=(3,1,1), y=(1,0,0): S = 5, p = (.6, .2, .2)
    alpha, y = _t(3.0, 1.0, 1.0)[None], _t(1.0, 0.0, 0.0)[None]
    # mse: (1-.6)^2 + .2^2 + .2^2 = .24; variance (.6*.4 + .2*.8 + .2*.8) / (5+1) = .56/6; total 1/3
    assert data_term(alpha, y, 'mse').item() == pytest.approx(0.24 + 0.56 / 6, rel=1e-12)
    assert data_term(alpha, y, 'mse').item() == pytest.approx(1 / 3, rel=1e-12)
    # log: log S - log alpha_1 = log 5 - log 3
    assert data_term(alpha, y, 'log').item() == pytest.approx(math.log(5 / 3), rel=1e-12)
    # digamma: psi(5) - psi(3) = 1/3 + 1/4 (psi(n+1) = psi(n) + 1/n)
    assert data_term(alpha, y, 'digamma').item() == pytest.approx(7 / 12, rel=1e-12)
    # the true class elsewhere: y=(0,1,0): mse (.6^2 + .8^2 + .2^2) + .56/6; log log 5; digamma psi(5)-psi(1)
    y2 = _t(0.0, 1.0, 0.0)[None]
    assert data_term(alpha, y2, 'mse').item() == pytest.approx(0.36 + 0.64 + 0.04 + 0.56 / 6, rel=1e-12)
    assert data_term(alpha, y2, 'log').item() == pytest.approx(math.log(5), rel=1e-12)
    assert data_term(alpha, y2, 'digamma').item() == pytest.approx(1 + 1 / 2 + 1 / 3 + 1 / 4, rel=1e-12)


def test_data_terms_on_maps_sum_the_channel_dim():
    g = torch.Generator().manual_seed(2)
    alpha = 1 + 3 * torch.rand(2, 4, 3, 5, generator=g, dtype=D64)
    y = F.one_hot(torch.randint(0, 4, (2, 3, 5), generator=g), 4).movedim(-1, 1).to(D64)
    for kind in DATA_TERMS:
        m = data_term(alpha, y, kind, dim=1)
        assert m.shape == (2, 3, 5)
        one = data_term(alpha[1, :, 2, 3][None], y[1, :, 2, 3][None], kind)
        assert m[1, 2, 3].item() == pytest.approx(one.item(), rel=1e-12)
        assert torch.allclose(data_term(alpha[0], y[0], kind, dim=0), m[0], rtol=1e-12)
    with pytest.raises(ValueError, match='data_term must be one of'):
        data_term(alpha, y, 'ce')


def test_kl_to_uniform_hand_worked():
    # KL(Dir(1,2,1) || Dir(1,1,1)) = lgamma(4) - lgamma(3) - (lgamma 1 + lgamma 2 + lgamma 1)
    #                                + (2-1)(psi(2) - psi(4)) = log 6 - log 2 - (1/2 + 1/3)
    assert kl_to_uniform(_t(1.0, 2.0, 1.0)[None]).item() == pytest.approx(math.log(3) - 5 / 6, rel=1e-12)
    assert torch.allclose(kl_to_uniform(torch.ones(4, 5, dtype=D64)), torch.zeros(4, dtype=D64), atol=1e-12)


def test_kl_to_uniform_matches_torch_distributions():
    g = torch.Generator().manual_seed(3)
    for k in (2, 3, 10):
        alpha = torch.exp(2 * torch.randn(50, k, generator=g, dtype=D64))  # alphas in ~(0.02, 50)
        want = kl_divergence(Dirichlet(alpha), Dirichlet(torch.ones_like(alpha)))
        assert torch.allclose(kl_to_uniform(alpha, dim=1), want, rtol=1e-9, atol=1e-10), k
        # on a map, channels on dim 0
        amap = alpha.T.reshape(k, 5, 10)
        assert torch.allclose(kl_to_uniform(amap, dim=0), want.reshape(5, 10), rtol=1e-9, atol=1e-10)
    assert bool((kl_to_uniform(1 + torch.rand(20, 4, generator=g, dtype=D64)) >= 0).all())


def test_kl_anneal_factor():
    t = 100
    assert kl_anneal(0, t) == 0.0
    assert kl_anneal(t / 2, t) == 0.5
    assert kl_anneal(t, t) == 1.0
    assert kl_anneal(2 * t, t) == 1.0
    assert kl_anneal(-5, t) == 0.0
    assert kl_anneal(0, 0) == 1.0 and kl_anneal(37, 0) == 1.0  # T = 0: no annealing
    assert isinstance(kl_anneal(30, t), float)


def test_edl_loss_map_removes_true_class_evidence_in_kl():
    # alpha=(3,2,1), y=(1,0,0): alpha~ = (1,2,1); log term log S - log alpha_1 = log 6 - log 3
    alpha, y = _t(3.0, 2.0, 1.0)[None], _t(1.0, 0.0, 0.0)[None]
    kl = math.log(3) - 5 / 6
    assert edl_loss_map(alpha, y, 'log', kl_factor=0.5).item() == pytest.approx(math.log(2) + 0.5 * kl, rel=1e-12)
    assert edl_loss_map(alpha, y, 'log', kl_factor=0.0).item() == pytest.approx(math.log(2), rel=1e-12)
    # all evidence on the true class: alpha~ = 1, no KL penalty at any factor
    a2 = _t(9.0, 1.0, 1.0)[None]
    assert edl_loss_map(a2, y, 'digamma', kl_factor=3.0).item() == pytest.approx(
        data_term(a2, y, 'digamma').item(), rel=1e-12)
    # general case against torch.distributions on the hand-built alpha~
    g = torch.Generator().manual_seed(4)
    alpha = 1 + 5 * torch.rand(30, 4, generator=g, dtype=D64)
    y = F.one_hot(torch.randint(0, 4, (30,), generator=g), 4).to(D64)
    at = torch.where(y.bool(), torch.ones_like(alpha), alpha)
    kl = kl_divergence(Dirichlet(at), Dirichlet(torch.ones_like(at)))
    for kind in DATA_TERMS:
        got = edl_loss_map(alpha, y, kind, kl_factor=0.3)
        assert torch.allclose(got, data_term(alpha, y, kind) + 0.3 * kl, rtol=1e-9, atol=1e-12), kind


# ---------------------------------------------------------------------------- gradients
def _logits_away_from_kinks(shape, seed):
    """Logits with |f| in [0.3, 3]: away from relu's / elu's kink at 0 and exp's clamp at +-10."""
    g = torch.Generator().manual_seed(seed)
    mag = 0.3 + 2.7 * torch.rand(shape, generator=g, dtype=D64)
    sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).to(D64)
    return mag * sign


def _labels(n, h, w, k, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n, h, w), generator=g)
    y[0, 0, 0] = 255
    return y


@pytest.mark.parametrize('kind', EVIDENCE_FUNCTIONS)
@pytest.mark.parametrize('term', DATA_TERMS)
def test_gradcheck_edl_loss_pipeline_float64(term, kind):
    """The functions EDLLoss composes (log alpha -> alpha -> data term + KL -> mean over valid
    pixels), in float64 at gradcheck's default tolerances."""
    k = 3
    f = _logits_away_from_kinks((2, k, 2, 2), seed=5).requires_grad_(True)
    y = _labels(2, 2, 2, k, seed=6)
    valid = y != 255
    onehot = F.one_hot(torch.where(valid, y, 0), k).movedim(-1, 1).to(D64)

    def loss(f):
        alpha = log_alpha(f, kind).exp()
        return reduce_loss_map(edl_loss_map(alpha, onehot, term, kl_factor=0.7), valid, None, True, 'test')

    assert torch.autograd.gradcheck(loss, (f,))


@pytest.mark.parametrize('kind', EVIDENCE_FUNCTIONS)
@pytest.mark.parametrize('term', DATA_TERMS)
def test_gradcheck_full_edl_loss_module(term, kind):
    """EDLLoss itself on log_alpha(f), a float64 input. EDLLoss computes in float32 (see
    test_edl_loss.py::test_edl_loss_keeps_float64), so the finite differences use a larger step
    and float32-level tolerances."""
    k = 3
    f = _logits_away_from_kinks((2, k, 2, 2), seed=7).requires_grad_(True)
    y = _labels(2, 2, 2, k, seed=8)
    crit = EDLLoss(data_term=term, kl_weight=0.7, kl_anneal_iters=0)
    assert torch.autograd.gradcheck(lambda f: crit(log_alpha(f, kind), y), (f,), eps=1e-3, atol=2e-4, rtol=1e-2)


def test_log_alpha_gradients_finite_at_extremes():
    f = torch.tensor([-1e4, -20.0, -1e-3, 1e-3, 20.0, 1e4], requires_grad=True)
    for kind in EVIDENCE_FUNCTIONS:
        (g,) = torch.autograd.grad(log_alpha(f, kind).sum(), f)
        assert bool(torch.isfinite(g).all()), (kind, g)
        assert bool((g >= 0).all()), kind  # log alpha is non-decreasing in f


# ---------------------------------------------------------------------------- checks
def test_check_evidence_errors():
    for kind in EVIDENCE_FUNCTIONS:
        check_evidence(kind)
        check_evidence(kind, 10.0, 150)
    with pytest.raises(ValueError, match=r"evidence must be one of .*got 'sigmoid'"):
        check_evidence('sigmoid')
    for bad in (0.0, -1.0, float('inf'), float('nan')):
        with pytest.raises(ValueError, match='exp_clamp must be a positive finite number'):
            check_evidence('exp', bad)
    # float32 max is exp(88.72): exp(88) * (K + 1) overflows; only 'exp' evidence is concerned
    with pytest.raises(ValueError, match=r'exp_clamp=88\.0.*overflows float32'):
        check_evidence('exp', 88.0, 3)
    with pytest.raises(ValueError, match='exp_clamp'):
        check_evidence('exp', 87.0, 1000)  # 87 + log(1001) > 88.72
    check_evidence('relu', 88.0, 3)
    check_evidence('exp', 80.0, 3)
    with pytest.raises(ValueError, match='evidence must be one of'):
        evidence(torch.zeros(2), 'tanh')
    with pytest.raises(ValueError, match='evidence must be one of'):
        log_alpha(torch.zeros(2), 'tanh')


@pytest.mark.parametrize('k', [2, 3, 150])
def test_the_largest_exp_clamp_check_evidence_accepts_gives_a_finite_edl_loss(k):
    with pytest.raises(ValueError, match='exp_clamp'):
        check_evidence('exp', 84.0, k)  # lgamma(S) ~ S log S overflows float32 there
    c = max(x / 10 for x in range(10, 900) if _accepted(x / 10, k))
    z = log_alpha(torch.full((1, k), 100.0), 'exp', c)
    for term in ('mse', 'log', 'digamma'):
        loss = EDLLoss(data_term=term, kl_anneal_iters=0)(z, torch.tensor([0]))
        assert bool(torch.isfinite(loss)), (c, term, loss)


def _accepted(c, k):
    try:
        check_evidence('exp', c, k)
    except ValueError:
        return False
    return True
