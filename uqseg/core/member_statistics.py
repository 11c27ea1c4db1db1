"""Streaming statistics over the members of an ensemble, MC-dropout passes or TTA views.

M members (models, stochastic passes, augmented views) each give a categorical distribution
``p_m`` per row or pixel: the softmax of their channels whatever their kind (a plain head's
logits; EDL's ``log alpha``, whose softmax is the expected probability ``alpha / S``; DisMax's
distance logits, whose softmax is its probability), or the probabilities themselves. With
``p = mean_m p_m`` and ``H`` the entropy in nats (Depeweg et al. 2018; Gal 2016; Lakshminarayanan
et al. 2017)::

    predictive entropy   H(p)                           (total uncertainty)
    expected entropy     mean_m H(p_m)                  (aleatoric)
    mutual information   H(p) - mean_m H(p_m) >= 0      (epistemic; Jensen)
    class variance       var_m p_m,y^  (population variance, y^ = argmax_c p_c)
    disagreement         share of members with argmax_c p_m,c != y^

:class:`MemberStatistics` keeps fixed-size float64 sums (memory independent of M), updated one
member at a time and merged exactly like the accumulators. The sums are shifted by the first
member (``sum_m (p_m - p_ref)``, ``sum_m (p_m - p_ref)^2``, ``sum_m (H_m - H_ref)``): no
cancellation when members nearly agree, and members that agree give a mean equal to ``p_ref``
and mutual information, variance and disagreement of exactly 0. Entropies are computed from the
non-top mass (``-p_top log p_top`` as ``-(p_top) log1p(-R)``, ``R = sum_{c != top} p_c``), so
near-certain members keep their entropy where ``1 - p_top`` rounds away. Conventions and what an
ensemble of EDL or DisMax members means: ``docs/ensembles.md``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch

from .confidence_keys import log1p
from .scores import (
    MEMBER_SCORES,
    OUTPUT_KINDS,
    PROBS,
    SCORE_TABLE,
    check_member_score,
    member_score_confidence,
    member_score_key,
    raw_score,
)

__all__ = ['MEMBER_SCORES', 'MemberSummary', 'MemberStatistics', 'member_probabilities', 'entropy_nats',
           'layer_score_names', 'member_map_names', 'member_statistics', 'mutual_information', 'check_member_score',
           'member_score_confidence', 'member_score_key']

_F64 = torch.float64


def _top(p: torch.Tensor, dim: int) -> torch.Tensor:
    """The index of the largest value along ``dim`` (kept), the first of tied maxima as ``argmax``:
    ``max``'s index, ~7x faster than ``argmax`` on a float64 CPU map (``benchmarks/bench_members.py``)."""
    return p.max(dim, keepdim=True)[1]


def member_probabilities(z: torch.Tensor, kind: str = 'logits', dim: int = 1) -> torch.Tensor:
    """One member's probabilities in float64: ``softmax(z)`` along ``dim`` for every output kind
    (logits; EDL's ``log alpha`` -> ``alpha / S``; distance logits), ``z`` itself for ``'probs'``."""
    if kind == PROBS:
        return z.to(_F64)
    if kind not in OUTPUT_KINDS:
        raise ValueError(f'unknown output kind {kind!r}; known: {tuple(OUTPUT_KINDS) + (PROBS,)}')
    return z.to(_F64).softmax(dim)


def entropy_nats(p: torch.Tensor, dim: int = 1, top: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``H(p) = -sum_c p_c log p_c`` in nats along ``dim`` (float64), the top class's term from the
    non-top mass ``R`` (``log p_top = log1p(-R)`` for ``R < 1/2``), so that it keeps ``R`` when
    ``1 - p_top`` is below float64's resolution."""
    pd = p.to(_F64)
    top = _top(pd, dim)
    rest = pd.scatter(dim, top, 0.0)
    r = rest.sum(dim, keepdim=True)
    p_top = pd.gather(dim, top)
    log_top = torch.where(r < 0.5, log1p(-r), torch.log(p_top))
    return (-torch.special.xlogy(rest, rest).sum(dim, keepdim=True) - p_top * log_top).squeeze(dim)


def layer_score_names(kind: str) -> tuple[str, ...]:
    """The scores of outputs of ``kind`` that are not functions of their probabilities (EDL's
    ``vacuity``; DisMax's ``MDS``, ``MMLS``, ``MMLES``): averaged over members of one kind."""
    return tuple(name for name, s in SCORE_TABLE.items() if kind in s.kinds and PROBS not in s.kinds)


def member_map_names(kinds: Sequence[str]) -> tuple:
    """The names of the maps members of ``kinds`` give (:meth:`MemberSummary.maps`):
    :data:`~uqseg.core.scores.MEMBER_SCORES`, and the averaged layer scores of members that all
    output one kind."""
    kinds = tuple(kinds)
    same = len(set(kinds)) == 1
    return MEMBER_SCORES + (layer_score_names(kinds[0]) if same else ())


class MemberSummary(NamedTuple):
    """What :meth:`MemberStatistics.compute` returns (float64; ``(N, ...)`` maps, ``mean`` with the
    classes on the statistics' ``dim``)."""
    mean: torch.Tensor
    predictive_entropy: torch.Tensor
    expected_entropy: torch.Tensor
    mutual_information: torch.Tensor
    class_variance: torch.Tensor
    disagreement: torch.Tensor
    members: int
    kinds: tuple
    layer_scores: dict

    def maps(self) -> dict[str, torch.Tensor]:
        """Every raw map by score name: :data:`~uqseg.core.scores.MEMBER_SCORES` and the averaged
        layer scores (uncertainties higher = less confident, layer scores in their own direction)."""
        out = {'mutual-information': self.mutual_information, 'expected-entropy': self.expected_entropy,
               'class-variance': self.class_variance, 'disagreement': self.disagreement}
        out.update(self.layer_scores)
        return out


class MemberStatistics:
    """Streaming, mergeable statistics of M members' distributions (module docstring).

    ``update(z, kind)`` adds one member's outputs ``(N, K, ...)`` with the classes on ``dim``;
    ``a.merge(b)`` / ``a + b`` combine two partial ensembles of the same rows. State, per row and
    class: the reference member's probabilities, the shifted first and second sums (float64) and the
    top-class votes (int32); per row: the reference entropy and the shifted entropy sum; per layer
    score of the members' common kind: its float64 sum. Nothing grows with M.
    """

    def __init__(self, dim: int = 1) -> None:
        self.dim = dim
        self.count = 0
        self.kinds: tuple = ()
        self._ref: Optional[torch.Tensor] = None
        self._s1 = self._s2 = self._votes = self._ref_h = self._sh = None
        self._layer: Optional[dict] = None  # name -> float64 sum; None after members of mixed kinds

    # -- state ---------------------------------------------------------------------------------
    def _check(self, p: torch.Tensor, source: str) -> None:
        if p.dim() <= self.dim:
            raise ValueError(f'{source}: outputs of shape {tuple(p.shape)} have no class dimension {self.dim}')
        if p.shape[self.dim] < 2:
            raise ValueError(f'{source}: {p.shape[self.dim]} class channel(s); members need at least 2 classes '
                             '(give a one-channel sigmoid output as the probabilities [1 - p, p], kind "probs")')
        if self._ref is not None and p.shape != self._ref.shape:
            what = 'classes' if p.shape[self.dim] != self._ref.shape[self.dim] else 'shape'
            raise ValueError(f'{source}: outputs of shape {tuple(p.shape)} ({p.shape[self.dim]} classes), but the '
                             f'members before it gave {tuple(self._ref.shape)} ({self._ref.shape[self.dim]} classes): '
                             f'members must agree in {what}')
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f'{source}: outputs contain non-finite values')

    def update(self, z: torch.Tensor, kind: str = 'logits', source: Optional[str] = None) -> 'MemberStatistics':
        """Add one member's outputs ``z`` of ``kind`` (:func:`member_probabilities`); ``source`` names
        it in errors (default ``member <index>``)."""
        source = source or f'member {self.count}'
        p = member_probabilities(z, kind, self.dim)
        self._check(p, source)
        top = _top(p, self.dim)
        h = entropy_nats(p, self.dim, top)
        layer = {name: raw_score(name, z, self.dim, kind).to(_F64) for name in layer_score_names(kind)}
        if self._ref is None:
            self._ref, self._ref_h = p.clone(), h
            self._s1, self._s2, self._sh = torch.zeros_like(p), torch.zeros_like(p), torch.zeros_like(h)
            self._votes = torch.zeros(p.shape, dtype=torch.int32, device=p.device)
            self._votes.scatter_add_(self.dim, top, torch.ones_like(top, dtype=torch.int32))
            self._layer = layer
        else:
            d = p - self._ref
            self._s1 += d
            self._s2 += d * d
            self._sh += h - self._ref_h
            self._votes.scatter_add_(self.dim, top, torch.ones_like(top, dtype=torch.int32))
            if self._layer is not None and self.kinds and kind == self.kinds[0]:
                for name, v in layer.items():
                    self._layer[name] += v
            else:
                self._layer = None
        self.count += 1
        self.kinds += (kind,)
        return self

    def merge(self, other: 'MemberStatistics') -> 'MemberStatistics':
        """Add the members of ``other`` (the same rows; exact up to float64 rounding): the sums of
        ``other`` are re-shifted to this reference, ``s1' = s1_b + n_b d``, ``s2' = s2_b + 2 d s1_b +
        n_b d^2`` with ``d = p_ref,b - p_ref,a``."""
        if self.dim != other.dim:
            raise ValueError(f'cannot merge statistics on dim {other.dim} into statistics on dim {self.dim}')
        if other.count == 0:
            return self
        if self.count == 0:
            for k, v in vars(other).items():
                setattr(self, k, v.clone() if isinstance(v, torch.Tensor) else
                        ({n: t.clone() for n, t in v.items()} if isinstance(v, dict) else v))
            return self
        self._check(other._ref, f'statistics of {other.count} member(s)')
        n_b = other.count
        d = other._ref - self._ref
        self._s1 += other._s1 + n_b * d
        self._s2 += other._s2 + 2 * d * other._s1 + n_b * d * d
        self._sh += other._sh + n_b * (other._ref_h - self._ref_h)
        self._votes += other._votes
        if self._layer is not None and other._layer is not None and self.kinds[0] == other.kinds[0]:
            for name in self._layer:
                self._layer[name] += other._layer[name]
        else:
            self._layer = None
        self.count += n_b
        self.kinds += other.kinds
        return self

    def __add__(self, other: 'MemberStatistics') -> 'MemberStatistics':
        return self.copy().merge(other)

    def copy(self) -> 'MemberStatistics':
        return MemberStatistics(self.dim).merge(self)

    # -- results -------------------------------------------------------------------------------
    def _need(self) -> None:
        if self.count == 0:
            raise ValueError('no members: call update() with at least one member first')

    def mean(self) -> torch.Tensor:
        """The mean probability ``p = p_ref + s1 / M`` (float64)."""
        self._need()
        return self._ref + self._s1 / self.count

    def mean_logits(self) -> torch.Tensor:
        """float32 ``log p`` (its softmax is the mean), clamped to float32's range: what an ensemble
        puts where a single model puts its logits (kind ``'logits'``)."""
        return self.mean().log().clamp_min(-1e4).float()

    def compute(self) -> MemberSummary:
        """The :class:`MemberSummary` of the members seen (module docstring)."""
        self._need()
        n, dim = self.count, self.dim
        mean = self.mean()
        pred = _top(mean, dim)
        pe = entropy_nats(mean, dim)
        ee = self._ref_h + self._sh / n
        s1y, s2y = self._s1.gather(dim, pred).squeeze(dim), self._s2.gather(dim, pred).squeeze(dim)
        var = (s2y / n - (s1y / n) ** 2).clamp_min(0)
        agree = self._votes.gather(dim, pred).squeeze(dim).to(_F64)
        layer = {} if self._layer is None else {k: v / n for k, v in self._layer.items()}
        return MemberSummary(mean, pe, ee, (pe - ee).clamp_min(0), var, (n - agree) / n, n, self.kinds, layer)

    def maps(self) -> dict[str, torch.Tensor]:
        """:meth:`MemberSummary.maps` of :meth:`compute`."""
        return self.compute().maps()


def member_statistics(stacked: torch.Tensor, kind: str = 'logits') -> MemberSummary:
    """The :class:`MemberSummary` of members' outputs stacked on dim 0, ``(M, N, K, ...)``."""
    if stacked.dim() < 3:
        raise ValueError(f'member outputs must be stacked (M, N, K, ...), got shape {tuple(stacked.shape)}')
    stats = MemberStatistics(dim=1)
    for m in range(stacked.shape[0]):
        stats.update(stacked[m], kind)
    return stats.compute()


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """The mutual information (nats, float64) of members' probabilities stacked ``(M, N, K, ...)``:
    ``H(mean_m p_m) - mean_m H(p_m)``, ``(N, ...)``."""
    return member_statistics(probs, PROBS).mutual_information

