"""Ranking keys of the confidences: float64, strictly increasing in the confidence, in log space.

A ranking metric (AURC, AUROC, FPR, coverage at accuracy, OOD AUROC) depends only on the order of
the confidences and on their ties. The confidence itself saturates: ``max p = 1 / (1 + r)``, with
``r = sum_{j != top} exp(z_j - z_top)``, is exactly 1.0 in float64 once the logit gap exceeds
about 37 (17 in float32), so a near-certain model's most confident predictions would tie. Each
confidence is therefore ranked by a key, an increasing function of it that keeps resolution at
both ends (``docs/metrics.md#ranking-keys``):

==============  ===================================  =========================================
confidence      key                                  computed as
==============  ===================================  =========================================
max-prob, MPS   ``logit(p_max) = -log r``            ``-(d_2 + log T)``
margin          ``logit(p_(1) - p_(2))``             ``log(-expm1(d_2)) - logaddexp(d_2, log r)``
entropy         ``-log H``                           ``H = log1p(r) + e^{d_2} A / (1 + r)``
ES              ``-log H`` (``ES = -H``)             as entropy
vacuity         ``-log u = log S - log K``           ``S = sum_j alpha_j``, ``log S`` by logsumexp
MDS, MMLS, ...  the score itself (float64)           :func:`distance_score`
==============  ===================================  =========================================

with ``d_j = z_j - z_top <= 0``, ``d_2`` the largest ``d_j`` below the top (the second largest
logit), ``t_j = exp(d_j - d_2)`` over the non-top classes (so ``t`` holds a 1 and no term
underflows: ``log r = d_2 + log T`` for any gap), ``T = sum t_j`` and ``A = sum t_j (-d_j)``
(every term >= 0, so ``H`` has no cancellation near certainty).

**Equal inputs give equal keys.** Rows that are permutations of each other must tie, so every
sum over classes that feeds a key is order-independent (:func:`fixed_sum`: each term is
truncated to a multiple of ``2^(e - q)``, ``2^e`` above the row's largest term, and the
integers are summed exactly in int64). The elementwise functions (``exp``, ``log``) give a value
that depends only on their argument, and the maxima are order-independent, so a key is a
function of the multiset of a row's values. Precision: about ``K 2^-62`` relative per sum, far
below float32 inputs' own.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

__all__ = ['KEYED_SCORES', 'DISTANCE_SCORES', 'distance_score', 'fixed_sum', 'SoftmaxRows', 'softmax_rows',
           'probability_rows', 'confidence_key', 'binary_key', 'log1p', 'log1p_exp', 'logaddexp']

#: The scores whose key is computed here from the softmax statistics (the others rank by their
#: raw score, see :func:`confidence_key`).
KEYED_SCORES = ('max-prob', 'MPS', 'margin', 'entropy', 'ES')
#: DisMax's scores of distance logits ``z = L / T`` (Macedo & Ludermir, 2022), higher = more confident.
DISTANCE_SCORES = ('MDS', 'MMLS', 'MMLES')
_F64 = torch.float64
_INF = math.inf


def fixed_sum(x: torch.Tensor, dim: int = -1, max_abs: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sum of float64 ``x`` along ``dim``, independent of the order of the terms.

    Per row, with ``2^e > max |x|`` (``max_abs`` if the caller knows a bound, e.g. 1), every
    term is truncated towards zero to a multiple of ``2^(e - q)``, ``q = 62 - ceil(log2 n)``, and
    the integers are summed in int64 (exact: ``n 2^q <= 2^62``). Error <= ``n 2^(e - q)``, i.e.
    about ``2^-52`` of the largest term for ``n = 1024``. Rows of zeros give 0.
    """
    n = x.shape[dim]
    if n == 0:
        return x.sum(dim)
    q = 62 - max(1, math.ceil(math.log2(n)))
    amax = x.abs().amax(dim, keepdim=True) if max_abs is None else max_abs
    e = torch.frexp(amax)[1].clamp_(min=-1000)  # amax < 2^e
    two = torch.tensor(2.0, dtype=_F64, device=x.device)
    scale = torch.pow(two, (q - e).to(_F64))  # exact powers of two; q - e <= 1062 stays finite
    s = torch.mul(x, scale).to(torch.int64).sum(dim, keepdim=True)
    return (s.to(_F64) / scale).squeeze(dim)


def log1p(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + x)`` to a few ulps from ``log`` and arithmetic only (``u = 1 + x``; ``log(u) x /
    (u - 1)``, Goldberg 1991, Theorem 4). torch's own ``log1p`` / ``softplus`` / ``logaddexp`` /
    ``sigmoid`` give a value that depends on the element's position in the tensor (the vector
    loop and its scalar tail differ by an ulp on some CPUs), which would split ties; ``exp``,
    ``log``, ``expm1`` and arithmetic do not (``tests/core/test_ranking_exactness.py`` checks the
    keys at every position)."""
    u = 1 + x
    den = u - 1
    return torch.where(den == 0, x, torch.log(u) * x / torch.where(den == 0, 1.0, den))


def log1p_exp(log_r: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))`` without overflow (``log1p(r)`` from ``log r``)."""
    big = log_r > 30
    return torch.where(big, log_r + log1p(torch.exp(-log_r)), log1p(torch.exp(torch.where(big, 0.0, log_r))))


def logaddexp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(exp(a) + exp(b))`` from :func:`log1p` (position-independent, see there)."""
    hi, lo = torch.maximum(a, b), torch.minimum(a, b)
    diff = torch.where(torch.isinf(lo) & (lo < 0), -_INF, lo - hi)  # exp(-inf) = 0, also when hi = -inf
    return hi + log1p(torch.exp(diff))


def _log_log1p(log_r: torch.Tensor) -> torch.Tensor:
    """``log(log1p(r))`` from ``log r``, exact where ``r`` underflows: ``log r + log(log1p(r) / r)``."""
    r = log_r.exp()
    ratio = torch.where(r > 0, log1p(r) / torch.where(r > 0, r, 1.0), 1.0)
    return log_r + torch.log(ratio)


class SoftmaxRows:
    """Per row (float64): the prediction ``pred``, ``d_2`` (log of the second largest ``p`` over
    the largest), ``log_r`` (``log((1 - p_max) / p_max)``), ``log_h`` (``log H``, None unless asked),
    and with labels ``nll`` (``-log p_y``, exact) and ``brier``. See the module docstring."""

    def __init__(self, pred, d2, log_r, log_h=None, nll=None, brier=None, clamped=0):
        self.pred, self.d2, self.log_r, self.log_h, self.nll, self.brier = pred, d2, log_r, log_h, nll, brier
        #: rows whose ``p_y`` was below the 1e-12 clamp (probability inputs only; logits need none)
        self.clamped = clamped

    @property
    def max_prob(self) -> torch.Tensor:
        """``p_max = 1 / (1 + r)``."""
        return 1 / (1 + self.log_r.exp())

    @property
    def margin(self) -> torch.Tensor:
        """``p_(1) - p_(2) = (1 - e^{d_2}) / (1 + r)``."""
        return -torch.expm1(self.d2) * self.max_prob

    @property
    def neg_entropy(self) -> torch.Tensor:
        """``sum_c p_c log p_c = -H``."""
        return -self.log_h.exp()

    def key(self, name: str) -> torch.Tensor:
        """The ranking key of a confidence of :data:`KEYED_SCORES`."""
        if name in ('max-prob', 'MPS'):
            return -self.log_r
        if name == 'margin':
            return torch.log(-torch.expm1(self.d2)) - logaddexp(self.d2, self.log_r)
        if name in ('entropy', 'ES'):
            return -self.log_h
        raise ValueError(f'no softmax key for {name!r}; keyed scores are {KEYED_SCORES}')


def _one_class(n: int, device, labels, need_labels: bool) -> SoftmaxRows:
    zeros = torch.zeros(n, dtype=_F64, device=device)
    ninf = torch.full((n,), -_INF, dtype=_F64, device=device)
    return SoftmaxRows(torch.zeros(n, dtype=torch.int64, device=device), ninf, ninf.clone(), ninf.clone(),
                       zeros.clone() if need_labels else None, zeros.clone() if need_labels else None)


def softmax_rows(z: torch.Tensor, labels: Optional[torch.Tensor] = None, entropy: bool = True) -> SoftmaxRows:
    """:class:`SoftmaxRows` of ``p = softmax(z)`` for ``(n, K)`` finite outputs ``z`` (any float
    dtype; computed in float64), with ``labels`` ``(n,)`` int64 the NLL and Brier too.

    ``nll = log1p(r) - d_y`` (log-softmax, never clamped). ``brier``: for ``y`` the top class
    ``(r^2 + E_2) / (1 + r)^2`` (no cancellation near certainty), else ``1 - 2 p_y + (1 + E_2) /
    (1 + r)^2``, with ``E_2 = sum_{j != top} e_j^2``.
    """
    n, k = z.shape
    if k == 1:
        return _one_class(n, z.device, labels, labels is not None)
    zd = z.to(_F64)
    m, idx = zd.max(1, keepdim=True)  # the first of tied maxima, as argmax
    d2 = zd.topk(2, dim=1).values[:, 1:] - m  # <= 0
    d = zd.sub_(m) if zd is not z else zd - m  # d_j = z_j - z_top (top: 0)
    t = (d - d2).exp_()
    t.scatter_(1, idx, 0.0)
    log_t = torch.log(fixed_sum(t, max_abs=torch.ones_like(d2)))
    d2 = d2[:, 0]
    log_r = d2 + log_t
    log_h = None
    if entropy:
        a = fixed_sum(t.mul_(d).neg_())  # t_j (-d_j) >= 0 (top: 0); t is not needed after this
        log_1pr = log1p_exp(log_r)
        log_h = logaddexp(_log_log1p(log_r), d2 + torch.log(a) - log_1pr)
    nll = brier = None
    if labels is not None:
        y = labels[:, None]
        is_top = (labels == idx[:, 0])
        d_y = torch.where(is_top, 0.0, d.gather(1, y)[:, 0])
        log_1pr = log1p_exp(log_r)
        nll = log_1pr - d_y
        # E_2 = sum_{j != top} exp(2 d_j)
        e = d.mul(2).exp_()
        e.scatter_(1, idx, 0.0)
        s2 = e.sum(1)
        inv = torch.exp(-2 * log_1pr)  # 1 / (1 + r)^2
        r = log_r.exp()
        p_y = torch.exp(-nll)
        brier = torch.where(is_top, (r * r + s2) * inv, 1 - 2 * p_y + (1 + s2) * inv)
    return SoftmaxRows(idx[:, 0].clone(), d2, log_r, log_h, nll, brier)


def probability_rows(p: torch.Tensor, labels: Optional[torch.Tensor] = None, entropy: bool = True,
                     eps: float = 1e-12) -> SoftmaxRows:
    """:class:`SoftmaxRows` of ``(n, K)`` probability rows (kind ``'probs'``): ``r = R / p_max``
    with ``R`` the sum of the non-top probabilities (not ``1 - p_max``, which cancels), ``d_2 =
    log(p_(2) / p_(1))``, ``H = -sum p log p``; ``nll = -log max(p_y, eps)`` (``clamped`` counts
    the rows the clamp changed) and ``brier = sum_c (p_c - [c = y])^2``."""
    n, k = p.shape
    if k == 1:
        return _one_class(n, p.device, labels, labels is not None)
    pd = p.to(_F64)
    pmax, idx = pd.max(1, keepdim=True)  # the first of tied maxima, as argmax
    top2 = pd.topk(2, dim=1).values
    pmax = pmax[:, 0]
    rest = pd.scatter(1, idx, 0.0)
    log_pmax = torch.log(pmax)
    log_r = torch.log(fixed_sum(rest)) - log_pmax
    d2 = torch.log(top2[:, 1]) - log_pmax
    log_h = torch.log(fixed_sum(-torch.special.xlogy(pd, pd))) if entropy else None
    nll = brier = None
    clamped = 0
    if labels is not None:
        py = pd.gather(1, labels[:, None])[:, 0]
        clamped = int((py < eps).sum())
        nll = -torch.log(py.clamp(min=eps))
        brier = torch.linalg.vecdot(pd, pd) - 2 * py + 1
    return SoftmaxRows(idx[:, 0].clone(), d2, log_r, log_h, nll, brier, clamped)


def _vacuity_key(z: torch.Tensor) -> torch.Tensor:
    """``-log u = log S - log K`` of EDL's ``u = K / S``, ``S = sum exp(z)`` (``z = log alpha``)."""
    zd = z.to(_F64)
    m = zd.amax(1, keepdim=True)
    return m[:, 0] + torch.log(fixed_sum((zd - m).exp_(), max_abs=torch.ones_like(m))) - math.log(z.shape[1])


def confidence_key(name: str, z: torch.Tensor, kind: str = 'logits', dim: int = 1) -> torch.Tensor:
    """The ranking key of confidence ``name`` for the outputs ``z`` of ``kind`` (classes on
    ``dim``), float64 of ``z``'s shape without ``dim``; higher = more confident, the same order
    and ties as the confidence wherever float64 resolves them (module docstring).

    ``name``: a score of :data:`uqseg.core.scores.SCORES`; ``kind``: an output kind or
    ``'probs'``. The layer scores rank by their raw score (``vacuity`` by ``-log u``), whose
    checks (kinds) are the caller's.
    """
    z = z.movedim(dim, -1)
    shape = z.shape[:-1]
    rows = z.reshape(-1, z.shape[-1])
    if name in KEYED_SCORES:
        st = probability_rows(rows, entropy=name in ('entropy', 'ES')) if kind == 'probs' else \
            softmax_rows(rows, entropy=name in ('entropy', 'ES'))
        key = st.key(name)
    elif name == 'vacuity':
        key = _vacuity_key(rows)
    elif name in DISTANCE_SCORES:
        key = distance_score(name, rows)
    else:
        raise ValueError(f'no ranking key for score {name!r}')
    return key.reshape(shape)


def distance_score(name: str, z: torch.Tensor) -> torch.Tensor:
    """``MDS = max_j z_j``, ``MMLS = MDS + mean_j z_j``, ``MMLES = MMLS - H(softmax(z))`` of
    ``(n, K)`` rows, float64, the sums order-independent (:func:`fixed_sum`); these are the
    scores themselves, so they are their own ranking keys."""
    zd = z.to(_F64)
    out = zd.amax(1)
    if name == 'MDS':
        return out
    out = out + fixed_sum(zd) / z.shape[1]
    if name == 'MMLES':
        out = out - softmax_rows(z).log_h.exp()
    return out


def binary_key(p: torch.Tensor) -> torch.Tensor:
    """The max-prob key ``logit(max(p, 1 - p)) = |log p - log1p(-p)|`` of a foreground probability
    map (one-channel sigmoid heads), float64: the same order as ``max(p, 1 - p)``, resolved near 0
    and 1 where that saturates."""
    pd = p.to(_F64)
    return (torch.log(pd) - log1p(-pd)).abs()
