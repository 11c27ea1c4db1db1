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
(every term >= 0, so ``H`` has no cancellation near certainty). (The code sums ``exp(d_j)``
scaled by a power of two near ``exp(-d_2)``, the same thing, and shifts by ``d_2`` only where
``exp(d_2)`` would underflow.)

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

import numpy as np
import torch

__all__ = ['KEYED_SCORES', 'DISTANCE_SCORES', 'distance_score', 'fixed_sum', 'SoftmaxRows', 'softmax_rows',
           'fast_softmax_rows', 'close_rows', 'probability_rows', 'confidence_key', 'binary_key', 'log1p',
           'log1p_exp', 'logaddexp']

#: The scores whose key is computed here from the softmax statistics (the others rank by their
#: raw score, see :func:`confidence_key`).
KEYED_SCORES = ('max-prob', 'MPS', 'margin', 'entropy', 'ES')
#: DisMax's scores of distance logits ``z = L / T`` (Macedo & Ludermir, 2022), higher = more confident.
DISTANCE_SCORES = ('MDS', 'MMLS', 'MMLES')
_F64 = torch.float64
_INF = math.inf
#: Below this, ``e_2 = exp(d_2)`` is rescaled (``exp(d_j - d_2)``) so that no term underflows.
_TINY = 2.0 ** -900


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

    FIELDS = ('pred', 'd2', 'log_r', 'log_h', 'nll', 'brier', 'tol')

    def __init__(self, pred, d2, log_r, log_h=None, nll=None, brier=None, clamped=0, tol=None):
        self.pred, self.d2, self.log_r, self.log_h, self.nll, self.brier = pred, d2, log_r, log_h, nll, brier
        #: rows whose ``p_y`` was below the 1e-12 clamp (probability inputs only; logits need none)
        self.clamped = clamped
        #: per-row bound on the error of every key (:func:`fast_softmax_rows`); None: exact rows
        self.tol = tol

    @classmethod
    def cat(cls, parts: list['SoftmaxRows']) -> 'SoftmaxRows':
        """The rows of ``parts`` one after the other."""
        def cat(field):
            vals = [getattr(p, field) for p in parts]
            if all(v is None for v in vals):
                return None
            if field == 'tol':  # exact parts have no error
                vals = [torch.zeros_like(p.d2) if v is None else v for p, v in zip(parts, vals)]
            return torch.cat(vals)
        return cls(**{f: cat(f) for f in cls.FIELDS}, clamped=sum(p.clamped for p in parts))

    def replace_rows(self, rows: torch.Tensor, exact: 'SoftmaxRows') -> None:
        """Overwrite ``rows`` with the exact statistics ``exact`` of those rows (their error: 0)."""
        for field in self.FIELDS[:-1]:
            mine, theirs = getattr(self, field), getattr(exact, field)
            if mine is not None:
                mine[rows] = theirs
        if self.tol is not None:
            self.tol[rows] = 0.0

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
    d = z.to(_F64, copy=True)
    m, idx = d.max(1, keepdim=True)  # the first of tied maxima, as argmax
    d.sub_(m)  # d_j = z_j - z_top <= 0
    e = d.exp()
    e.scatter_(1, idx, 0.0)  # e_j = p_j / p_top over the non-top classes
    e2 = e.amax(1, keepdim=True)
    d2 = d.scatter(1, idx, -_INF).amax(1, keepdim=True)  # exact (e's maximum can be a tie of roundings)
    shift = torch.zeros_like(d2)  # e_j = exp(d_j - shift)
    tiny = e2[:, 0] < _TINY  # e_2 near underflow (a gap beyond ~700): rescale by the second logit
    if bool(tiny.any()):
        rows = tiny.nonzero()[:, 0]
        es = (d[rows] - d2[rows]).exp_()
        es.scatter_(1, idx[rows], 0.0)
        e[rows], e2[rows], shift[rows] = es, 1.0, d2[rows]
    log_r = (shift + torch.log(fixed_sum(e, max_abs=e2)[:, None]))[:, 0]
    shift, d2 = shift[:, 0], d2[:, 0]
    log_h = None
    if entropy:
        a = torch.mul(e, d).neg_()  # e_j (-d_j) >= 0 (top: 0)
        a = fixed_sum(a, max_abs=a.amax(1, keepdim=True))
        log_h = logaddexp(_log_log1p(log_r), shift + torch.log(a) - log1p_exp(log_r))
    nll = brier = None
    if labels is not None:
        is_top = labels == idx[:, 0]
        d_y = torch.where(is_top, 0.0, d.gather(1, labels[:, None])[:, 0])
        log_1pr = log1p_exp(log_r)
        nll = log_1pr - d_y
        s2 = torch.linalg.vecdot(e, e) * torch.exp(2 * shift)  # sum_{j != top} e_j^2
        inv = torch.exp(-2 * log_1pr)  # 1 / (1 + r)^2
        r = log_r.exp()
        brier = torch.where(is_top, (r * r + s2) * inv, 1 - 2 * torch.exp(-nll) + (1 + s2) * inv)
    return SoftmaxRows(idx[:, 0].clone(), d2, log_r, log_h, nll, brier)


#: Rows of :func:`fast_softmax_rows` whose second largest ``e_j`` is below this are left to the
#: exact path (float32 ``exp`` loses precision towards its underflow at ``2^-126``).
_FAST_TINY = 2.0 ** -60


def fast_softmax_rows(z: torch.Tensor, labels: Optional[torch.Tensor] = None, entropy: bool = True
                      ) -> tuple[SoftmaxRows, torch.Tensor]:
    """:func:`softmax_rows` in float32 arithmetic (sums in float64) for float32 / float16 / bfloat16
    ``z``, with ``tol``, a per-row bound on the error of every key, and a bool mask of the rows it
    cannot bound (second largest ``e_j`` below ``2^-60``: a logit gap beyond ~41), which the
    caller computes exactly.

    Error: ``d_j = fl(z_j - z_top)`` is within ``2^-24 |d_j|`` of the exact difference, float32
    ``exp`` within 1 ulp (``2^-23``), the float64 sums within ``K 2^-52``; so ``r`` and ``A`` are
    within ``2^-23 + 2^-24 D`` relative, ``D = z_top - min_j z_j``, and each key (``-log r``,
    ``-log H``, the margin's logit, whose ``d_2`` is exact) within the same in absolute terms.
    ``tol`` is 4 times that plus ``K 2^-50``. Rows that are permutations of each other differ only
    by the order of their float64 sums (``exp`` of a float32 value is position-independent), far
    inside ``tol``. :func:`close_rows` finds the rows whose keys are within ``tol`` of a
    neighbour's; their exact keys decide their order.
    """
    n, k = z.shape
    zf = z.float()
    m, idx = zf.max(1, keepdim=True)
    d = zf - m
    e = d.exp()
    e.scatter_(1, idx, 0.0)
    e2 = e.amax(1)
    m64 = m[:, 0].double()
    d2 = zf.scatter(1, idx, -_INF).amax(1).double() - m64  # exact in float64
    r = e.sum(1, dtype=_F64)
    log_r = torch.log(r)
    span = m64 - zf.amin(1).double()
    tol = 4 * (2.0 ** -23 + 2.0 ** -24 * span) + k * 2.0 ** -50
    unsure = e2 < _FAST_TINY
    log_h = None
    if entropy:
        a = torch.mul(e, d).sum(1, dtype=_F64).neg_()  # sum e_j (-d_j) >= 0
        log_h = logaddexp(_log_log1p(log_r), torch.log(a) - log1p_exp(log_r))
    nll = brier = None
    if labels is not None:
        is_top = labels == idx[:, 0]
        d_y = torch.where(is_top, 0.0, zf.gather(1, labels[:, None])[:, 0].double() - m64)
        log_1pr = log1p_exp(log_r)
        nll = log_1pr - d_y
        s2 = torch.mul(e, e).sum(1, dtype=_F64)
        inv = torch.exp(-2 * log_1pr)
        brier = torch.where(is_top, (r * r + s2) * inv, 1 - 2 * torch.exp(-nll) + (1 + s2) * inv)
    return SoftmaxRows(idx[:, 0].clone(), d2, log_r, log_h, nll, brier, tol=tol), unsure


def close_rows(keys: torch.Tensor, tol: torch.Tensor) -> torch.Tensor:
    """Bool mask of the rows whose ``keys`` lie within ``tol_i + tol_j`` of a neighbour's in sorted
    order (so two rows whose exact keys are equal, or whose order the approximate keys cannot
    tell, are both in it). Rows with ``tol = 0`` are exact and never the cause."""
    n = keys.numel()
    out = torch.zeros(n, dtype=torch.bool, device=keys.device)
    if n < 2:
        return out
    order = torch.from_numpy(np.argsort(keys.cpu().numpy(), kind='stable')).to(keys.device)
    ks, ts = keys[order], tol[order]
    close = (ks[1:] - ks[:-1]) <= (ts[1:] + ts[:-1])
    close &= (ts[1:] + ts[:-1]) > 0
    hit = torch.zeros(n, dtype=torch.bool, device=keys.device)
    hit[:-1] |= close
    hit[1:] |= close
    out[order] = hit
    return out


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
