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

__all__ = ['CHUNK_VALUES', 'row_chunks', 'KEYED_SCORES', 'DISTANCE_SCORES', 'distance_score', 'fixed_sum',
           'SoftmaxRows', 'softmax_rows',
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


#: Rows per chunk of the row passes are chosen so that a chunk holds about this many values
#: (1 MB of float32, 2 MB as float64: the chunk's passes stay in the cache; 256 rows of 1,000
#: classes ran 4x faster than 1,024 rows).
CHUNK_VALUES = 1 << 18


def row_chunks(n: int, k: int):
    """Slices of ``n`` rows of ``k`` values, about :data:`CHUNK_VALUES` values each."""
    rows = max(1, CHUNK_VALUES // max(k, 1))
    return (slice(start, min(start + rows, n)) for start in range(0, n, rows))


def fixed_sum(x: torch.Tensor, dim: int = -1, max_abs: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sum of float64 ``x`` along ``dim``, independent of the order of the terms.

    Per row, with ``2^e > max |x|`` (``max_abs`` if the caller knows a bound, e.g. 1), every
    term is truncated towards zero to a multiple of ``2^(e - q)``, ``q = 62 - ceil(log2 n)``, and
    the integers are summed in int64 (exact: ``n 2^q <= 2^62``). Error <= ``n 2^(e - q)``, i.e.
    about ``2^-52`` of the largest term for ``n = 1024`` (at most ``n 2^-1023`` for rows of tiny
    terms, whose ``e`` is held at ``q - 1023``). Rows of zeros give 0.
    """
    n = x.shape[dim]
    if n == 0:
        return x.sum(dim)
    q = 62 - max(1, math.ceil(math.log2(n)))
    amax = x.abs().amax(dim, keepdim=True) if max_abs is None else max_abs
    # amax < 2^e; e >= q - 1023 keeps the scale 2^(q - e) finite (for amax below 2^(q - 1023) the
    # grid is 2^-1023: terms under it are dropped, an absolute error under n 2^-1023)
    e = torch.frexp(amax)[1].clamp_(min=q - 1023)
    two = torch.tensor(2.0, dtype=_F64, device=x.device)
    scale = torch.pow(two, (q - e).to(_F64))  # exact powers of two, at most 2^1023
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
    the largest), ``log_r`` (``log((1 - p_max) / p_max)``), ``log_a`` (``log A``, ``A = sum_j
    e_j (-d_j)``; None unless the entropy is asked for), and with labels ``d_y`` (``z_y - z_top``)
    and ``s2`` (``sum_{j != top} e_j^2``); :attr:`log_h`, :attr:`nll` and :attr:`brier` follow from
    them, once, on whole columns (module docstring). Probability rows give ``log_h``, ``nll`` and
    ``brier`` directly (``*_given``). ``a_over_r`` / ``span``: the error terms of
    :func:`fast_softmax_rows`'s rows (0 on exact rows, None where every row is exact), from which
    :meth:`key_tol` gives each key's per-row error bound."""

    FIELDS = ('pred', 'd2', 'log_r', 'log_a', 'd_y', 's2', 'log_h_given', 'nll_given', 'brier_given',
              'a_over_r', 'span')

    def __init__(self, pred, d2, log_r, log_a=None, d_y=None, s2=None, log_h_given=None, nll_given=None,
                 brier_given=None, a_over_r=None, span=None, clamped=0, k=0):
        self.pred, self.d2, self.log_r, self.log_a, self.d_y, self.s2 = pred, d2, log_r, log_a, d_y, s2
        self.log_h_given, self.nll_given, self.brier_given = log_h_given, nll_given, brier_given
        #: the error terms of :func:`fast_softmax_rows` (``A / r`` and ``D``; 0 on exact rows)
        self.a_over_r, self.span = a_over_r, span
        #: rows whose ``p_y`` was below the 1e-12 clamp (probability inputs only; logits need none)
        self.clamped = clamped
        self.k = k  # classes (the summation term of :meth:`key_tol`)

    @classmethod
    def empty_like(cls, part: 'SoftmaxRows', n: int) -> 'SoftmaxRows':
        """Uninitialised columns of ``n`` rows with ``part``'s fields, for :meth:`replace_rows` to
        fill chunk by chunk (one allocation per column: per-chunk results kept alive between the
        chunks' large temporaries fragment the heap, ~4x the input's memory at 50,000 x 1,000)."""
        cols = {f: None if getattr(part, f) is None else getattr(part, f).new_empty((n,)) for f in cls.FIELDS}
        if part.a_over_r is None:  # an exact first part: room for the bounds of fast parts to come
            cols['a_over_r'] = part.d2.new_zeros((n,))
            cols['span'] = part.d2.new_zeros((n,))
        return cls(**cols, k=part.k)

    def replace_rows(self, rows, exact: 'SoftmaxRows') -> None:
        """Overwrite ``rows`` (indices or a slice) with the statistics ``exact`` of those rows (an
        exact part's error terms: 0)."""
        for field in self.FIELDS:
            mine, theirs = getattr(self, field), getattr(exact, field)
            if mine is not None:
                if theirs is None and field not in ('a_over_r', 'span'):
                    raise ValueError(f'replace_rows: the exact rows lack {field}')
                mine[rows] = 0.0 if theirs is None else theirs

    def key_tol(self, name: str) -> Optional[torch.Tensor]:
        """The per-row error bound of the key of ``name`` (None: exact rows), see
        :func:`fast_softmax_rows`: ``2 (2^-23 + 2^-24 A / r)`` for ``log r``, at least ``2
        (2^-22 + 2^-24 D)`` for ``log H``, plus ``2^-23 (1 + |d_2|)`` for the margin (its ``d_2``
        is a float32 difference), each plus ``K 2^-50`` (0 on exact rows)."""
        if self.a_over_r is None:
            return None
        tol = 2 * (2.0 ** -23 + 2.0 ** -24 * self.a_over_r)
        if name in ('entropy', 'ES'):
            tol = torch.maximum(tol, 2 * (2.0 ** -22 + 2.0 ** -24 * self.span))
        elif name == 'margin':  # d_2 is fl(z_2 - z_top): log(-expm1(d_2)) within 2^-24, logaddexp within 2^-24 |d_2|
            tol = tol + 2 * 2.0 ** -24 * (1 + self.d2.abs())
        return torch.where(self.span > 0, tol + self.k * 2.0 ** -50, 0.0)

    @property
    def log_h(self) -> Optional[torch.Tensor]:
        """``log H`` with ``H = log1p(r) + A / (1 + r)``."""
        if self.log_h_given is not None or self.log_a is None:
            return self.log_h_given
        return logaddexp(_log_log1p(self.log_r), self.log_a - log1p_exp(self.log_r))

    @property
    def nll(self) -> Optional[torch.Tensor]:
        """``-log p_y = log1p(r) - d_y`` (the log-softmax, never clamped)."""
        if self.nll_given is not None or self.d_y is None:
            return self.nll_given
        return torch.nn.functional.softplus(self.log_r) - self.d_y  # not a key: torch's softplus will do

    @property
    def brier(self) -> Optional[torch.Tensor]:
        """``sum_c (p_c - [c = y])^2``: ``(r^2 + E_2) / (1 + r)^2`` where ``p_y = p_top`` (no
        cancellation near certainty), else ``1 - 2 p_y + (1 + E_2) / (1 + r)^2``, ``E_2 = s2``."""
        if self.brier_given is not None or self.s2 is None:
            return self.brier_given
        log_1pr = torch.nn.functional.softplus(self.log_r)  # not a key: torch's softplus will do
        inv = torch.exp(-2 * log_1pr)
        r = self.log_r.exp()
        p_y = torch.exp(self.d_y - log_1pr)
        return torch.where(self.d_y == 0, (r * r + self.s2) * inv, 1 - 2 * p_y + (1 + self.s2) * inv)

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


def _one_class(n: int, device, labels) -> SoftmaxRows:
    zeros = torch.zeros(n, dtype=_F64, device=device)
    ninf = torch.full((n,), -_INF, dtype=_F64, device=device)
    given = None if labels is None else zeros
    return SoftmaxRows(torch.zeros(n, dtype=torch.int64, device=device), ninf, ninf.clone(), log_h_given=ninf.clone(),
                       nll_given=given, brier_given=None if given is None else given.clone())


def softmax_rows(z: torch.Tensor, labels: Optional[torch.Tensor] = None, entropy: bool = True) -> SoftmaxRows:
    """:class:`SoftmaxRows` of ``p = softmax(z)`` for ``(n, K)`` finite outputs ``z`` (any float
    dtype; computed in float64), with ``labels`` ``(n,)`` int64 the NLL and Brier too."""
    n, k = z.shape
    if k == 1:
        return _one_class(n, z.device, labels)
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
    log_a = None
    if entropy:
        a = torch.mul(e, d).neg_()  # e_j (-d_j) >= 0 (top: 0)
        log_a = shift + torch.log(fixed_sum(a, max_abs=a.amax(1, keepdim=True)))
    d_y = s2 = None
    if labels is not None:
        d_y = d.gather(1, labels[:, None])[:, 0]
        s2 = torch.linalg.vecdot(e, e) * torch.exp(2 * shift)
    return SoftmaxRows(idx[:, 0].clone(), d2, log_r, log_a, d_y, s2)


#: Rows of :func:`fast_softmax_rows` whose second largest ``e_j`` is below this are left to the
#: exact path (float32 ``exp`` loses precision towards its underflow at ``2^-126``).
_FAST_TINY = 2.0 ** -60


def fast_softmax_rows(z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> tuple[SoftmaxRows, torch.Tensor]:
    """:func:`softmax_rows` in float32 arithmetic (sums in float64) for float32 / float16 / bfloat16
    ``z``, with the terms of a per-row bound on the error of every key
    (:meth:`SoftmaxRows.key_tol`), and a bool mask of the rows it cannot bound (second largest
    ``e_j`` below ``2^-60``: a logit gap beyond ~41), which the caller computes exactly.

    Error: ``d_j = fl(z_j - z_top)`` is within ``2^-24 |d_j|`` of the exact difference, float32
    ``exp`` within 1 ulp (``2^-23``), the float64 sums within ``K 2^-52``. So ``r`` is within
    ``2^-23 + 2^-24 A / r`` relative (``A = sum e_j |d_j|``, the entropy's sum, always computed
    here for this bound), and ``A`` within ``2^-22 + 2^-24 D`` (``D = z_top - min_j z_j``); the
    key ``-log r`` is within the first in absolute terms, ``-log H`` within the larger of the two,
    the margin's within the first plus ``2^-24 (1 + |d_2|)`` (``d_2 = fl(z_2 - z_top)``); each is
    taken twice, plus ``K 2^-50``. Rows
    that are permutations of each other differ only by the order of their float64 sums (``exp``
    of a float32 value is position-independent), far inside the bounds. :func:`close_rows` finds
    the rows whose keys are within the bounds of a neighbour's; their exact keys decide their
    order.
    """
    zf = z.float()
    m, idx = zf.max(1, keepdim=True)
    d = zf - m
    e = d.exp()
    e.scatter_(1, idx, 0.0)
    m64 = m[:, 0].double()
    r = e.sum(1, dtype=_F64)
    a = torch.mul(e, d).sum(1, dtype=_F64).neg_()  # A = sum e_j (-d_j) >= 0
    d2 = d.scatter_(1, idx, -_INF).amax(1).double()  # fl(z_2 - z_top): within 2^-24 |d_2| (key_tol)
    d_y = s2 = None
    if labels is not None:
        d_y = zf.gather(1, labels[:, None])[:, 0].double() - m64
        s2 = torch.mul(e, e).sum(1, dtype=_F64)
    st = SoftmaxRows(idx[:, 0].clone(), d2, torch.log(r), torch.log(a), d_y, s2, a_over_r=a / r,
                     span=m64 - zf.amin(1).double(), k=z.shape[1])
    return st, e.amax(1) < _FAST_TINY


def close_rows(keys: torch.Tensor, tol: torch.Tensor) -> torch.Tensor:
    """Bool mask of the rows whose ``keys`` lie within ``tol_i + tol_j`` of a neighbour's in sorted
    order (so two rows whose exact keys are equal, or whose order the approximate keys cannot
    tell, are both in it). Rows with ``tol = 0`` are exact and never the cause."""
    n = keys.numel()
    out = torch.zeros(n, dtype=torch.bool, device=keys.device)
    if n < 2:
        return out
    order = torch.from_numpy(np.argsort(keys.cpu().numpy())).to(keys.device)  # any order of equal keys will do
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
        return _one_class(n, p.device, labels)
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
    return SoftmaxRows(idx[:, 0].clone(), d2, log_r, log_h_given=log_h, nll_given=nll, brier_given=brier,
                       clamped=clamped)


def _vacuity_key(z: torch.Tensor) -> torch.Tensor:
    """``-log u = log S - log K`` of EDL's ``u = K / S``, ``S = sum exp(z)`` (``z = log alpha``)."""
    zd = z.to(_F64)
    m = zd.amax(1, keepdim=True)
    return m[:, 0] + torch.log(fixed_sum((zd - m).exp_(), max_abs=torch.ones_like(m))) - math.log(z.shape[1])


def confidence_key(name: str, z: torch.Tensor, kind: str = 'logits', dim: int = 1, exact: bool = True) -> torch.Tensor:
    """The ranking key of confidence ``name`` for the outputs ``z`` of ``kind`` (classes on
    ``dim``), float64 of ``z``'s shape without ``dim``; higher = more confident, the same order
    and ties as the confidence wherever float64 resolves them (module docstring).

    ``name``: a score of :data:`uqseg.core.scores.SCORES`; ``kind``: an output kind or
    ``'probs'``. The layer scores rank by their raw score (``vacuity`` by ``-log u``), whose
    checks (kinds) are the caller's. ``exact=False`` (keys that are binned, e.g. a pixel
    histogram): float32 / float16 logits in one float32 pass, the keys within the error bound of
    :func:`fast_softmax_rows` (~1e-6, far below a histogram bin; rows beyond float32's ``exp``
    still exact), about 3x faster.
    """
    z = z.movedim(dim, -1)
    shape = z.shape[:-1]
    rows = z.reshape(-1, z.shape[-1])
    entropy = name in ('entropy', 'ES')
    if name in KEYED_SCORES:
        if kind == 'probs':
            st = probability_rows(rows, entropy=entropy)
        elif not exact and rows.dtype in (torch.float32, torch.float16, torch.bfloat16) and rows.shape[1] > 1:
            st, unsure = fast_softmax_rows(rows)
            if bool(unsure.any()):
                idx = unsure.nonzero()[:, 0]
                st.replace_rows(idx, softmax_rows(rows[idx]))
        else:
            st = softmax_rows(rows, entropy=entropy)
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
