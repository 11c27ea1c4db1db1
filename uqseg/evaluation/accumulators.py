"""Mergeable streaming accumulators for dataset-level ("pooled") uncertainty metrics.

Each accumulator keeps a fixed-size float64 ``state`` tensor whose size does not depend on the
number of pixels seen. States are plain sums, so

* ``a.merge(b)`` (in place) / ``a + b`` (new object) combine accumulators, and the result equals
  one pass over the concatenated data (up to float64 summation order);
* across ranks, ``torch.distributed.all_reduce(acc.state)`` (SUM) gives every rank the global
  state; then ``acc.compute()``.

``update`` takes already-flattened, already-filtered values (ignore_index pixels removed by the
caller; spec section 5) and validates them like :mod:`uqseg.evaluation.functional`.

* :class:`CalibrationAccumulator` - per-bin sums (:mod:`uqseg.evaluation.binning`) -> ECE, MCE,
  RMSCE, OE and reliability-diagram data.
* :class:`ScoreSumAccumulator` - sums for NLL and Brier score.
* :class:`ConfidenceHistogram` - a fine confidence histogram split by correct / incorrect, from
  which AURC, E-AURC, AUROC, AUPR and FPR@95TPR are computed with each histogram bin taken as one
  tie group; :meth:`ConfidenceHistogram.bounds` gives the interval that must contain the exact
  values (see its docstring).
"""
from __future__ import annotations

import math
from typing import TypeVar

import torch

from . import functional as F
from .binning import bin_sums, errors_from_bin_sums, fast_bin_index

__all__ = ['CalibrationAccumulator', 'ScoreSumAccumulator', 'ConfidenceHistogram']

_A = TypeVar('_A', bound='_SumAccumulator')


class _SumAccumulator:
    """Base: a float64 ``state`` tensor of sums; merging adds states."""

    state: torch.Tensor

    def _config(self) -> tuple:
        return ()

    def _check_other(self, other: '_SumAccumulator') -> None:
        if type(other) is not type(self) or other._config() != self._config():
            raise ValueError(f'cannot merge {type(self).__name__}{self._config()} with '
                             f'{type(other).__name__}{getattr(other, "_config", tuple)()}')

    def merge(self: _A, other: _A) -> _A:
        """Add ``other``'s sums into this accumulator (in place) and return it."""
        self._check_other(other)
        self.state += other.state.to(self.state.device)
        return self

    def __add__(self: _A, other: _A) -> _A:
        out = self.copy()
        return out.merge(other)

    def __iadd__(self: _A, other: _A) -> _A:
        return self.merge(other)

    def copy(self: _A) -> _A:
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.state = self.state.clone()
        return out

    def reset(self) -> None:
        self.state.zero_()

    def to(self: _A, device: torch.device | str) -> _A:
        """Move the state to ``device`` (in place) and return self."""
        self.state = self.state.to(device)
        return self

    def _match_device(self, x: torch.Tensor) -> None:
        if self.state.device != x.device:
            self.state = self.state.to(x.device)


class CalibrationAccumulator(_SumAccumulator):
    """Per-bin ``[count, sum conf, sum correct]`` (shape (3, n_bins)) for binned calibration.

    Equal-width bins ``(k/n, (k+1)/n]`` (spec section 5; :mod:`.binning`). ``compute()`` gives
    ECE, MCE, RMSCE, OE (``nan`` before any update); :meth:`reliability` the diagram data.
    """

    def __init__(self, n_bins: int = 15, device: torch.device | str | None = None) -> None:
        F._check_n_bins(n_bins)
        self.n_bins = n_bins
        self.state = torch.zeros(3, n_bins, dtype=torch.float64, device=device)

    def _config(self) -> tuple:
        return (self.n_bins,)

    def update(self, conf: torch.Tensor, correct: torch.Tensor) -> None:
        conf, correct = F._pair(conf, correct, binary=False)
        self._match_device(conf)
        self.state += bin_sums(conf, correct, self.n_bins)

    def compute(self) -> dict[str, float]:
        """``{'ECE', 'MCE', 'RMSCE', 'OE'}`` from the pooled bin sums (Naeini et al. 2015)."""
        return errors_from_bin_sums(self.state)

    def reliability(self) -> dict[str, torch.Tensor]:
        """Reliability-diagram data per bin (CPU float64, length n_bins).

        ``count``, ``conf`` (mean confidence), ``acc`` (accuracy; ``nan`` for empty bins, as is
        ``conf``), ``lower`` / ``upper`` (bin edges k/n and (k+1)/n).
        """
        s = self.state.detach().cpu()
        count = s[0]
        safe = torch.where(count > 0, count, torch.full_like(count, math.nan))
        edges = torch.arange(self.n_bins + 1, dtype=torch.float64) / self.n_bins
        return dict(count=count.clone(), conf=s[1] / safe, acc=s[2] / safe,
                    lower=edges[:-1], upper=edges[1:])


class ScoreSumAccumulator(_SumAccumulator):
    """Sums ``[sum NLL, sum Brier, count]`` for the pooled mean NLL and Brier score.

    ``update(probs, target)`` takes the shapes of :func:`.functional.brier_score` (multiclass
    (N, C, ...) with int targets, or binary positive-class probabilities). ``nan`` before any
    update.
    """

    def __init__(self, eps: float = 1e-12, device: torch.device | str | None = None) -> None:
        self.eps = eps
        self.state = torch.zeros(3, dtype=torch.float64, device=device)

    def _config(self) -> tuple:
        return (self.eps,)

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        pt, sq = F._target_probs(probs, target)
        self._match_device(pt)
        self.state += torch.stack([-pt.clamp(min=self.eps).log().sum(), sq.sum(),
                                   torch.tensor(float(pt.numel()), dtype=torch.float64,
                                                device=pt.device)])

    def compute(self) -> dict[str, float]:
        n = float(self.state[2])
        if n == 0:
            return dict(NLL=math.nan, Brier=math.nan)
        return dict(NLL=float(self.state[0]) / n, Brier=float(self.state[1]) / n)


class ConfidenceHistogram(_SumAccumulator):
    """Confidence histogram split by correctness: ``state[0]`` correct, ``state[1]`` incorrect.

    Bins are the equal-width ``(k/n, (k+1)/n]`` of :mod:`.binning` (default n = 10000, 160 kB).
    Ranking metrics treat every bin as one tie group, i.e. they are the exact functional values
    (ties in expectation / counted 1/2, Galil et al. 2023) for the data with every confidence
    replaced by its bin. Relative to the exact values on the real confidences:

    * AUROC: only (correct, incorrect) pairs inside one bin can change, each by at most 1/2, so
      ``|AUROC_hist - AUROC_exact| <= 0.5 * sum_b P_b Q_b / (P Q)`` (P_b, Q_b the correct /
      incorrect counts of bin b). This interval is tight: :meth:`bounds`.
    * AURC / E-AURC: inside a bin the exact cumulative error count lies between the
      "correct first" and the "errors first" order, so AURC_exact lies between the AURC of those
      two orders of every bin; both are computed in closed form by :meth:`bounds` (and the
      histogram value, the average over in-bin orders, lies between them too). A simpler
      a-priori bound: after j of a bin's m_b samples the actual error count differs from the
      expected j Q_b / m_b by at most P_b Q_b / m_b, so ``|AURC_hist - AURC_exact| <=
      (1/N) sum_b (P_b Q_b / m_b) (H_{s_b+m_b} - H_{s_b})`` with ``s_b`` the number of samples
      in higher bins and H the harmonic numbers; it is <= (1/N) sum_b P_b Q_b / (s_b + 1).
      All bounds are 0 when no bin mixes correct and incorrect samples.
    * AUPR and FPR@TPR use the bins as thresholds; no bound is claimed (they match the exact
      values whenever each bin holds one distinct confidence).
    """

    def __init__(self, n_bins: int = 10000, device: torch.device | str | None = None) -> None:
        F._check_n_bins(n_bins)
        self.n_bins = n_bins
        self.state = torch.zeros(2, n_bins, dtype=torch.float64, device=device)

    def _config(self) -> tuple:
        return (self.n_bins,)

    def update(self, conf: torch.Tensor, correct: torch.Tensor) -> None:
        conf, correct = F._pair(conf, correct, binary=True)
        self._match_device(conf)
        idx = fast_bin_index(conf, self.n_bins)
        ok = torch.bincount(idx, weights=correct, minlength=self.n_bins)
        allc = torch.bincount(idx, minlength=self.n_bins).to(torch.float64)
        self.state[0] += ok
        self.state[1] += allc - ok

    # -- helpers ------------------------------------------------------------------------------
    def _groups_desc(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(correct, incorrect) counts of the non-empty bins, highest confidence first (CPU)."""
        s = self.state.detach().cpu().flip(1)
        keep = s.sum(0) > 0
        return s[0, keep], s[1, keep]

    @staticmethod
    def _aurc_sum(starts: torch.Tensor, size: torch.Tensor, e_before: torch.Tensor,
                  err: torch.Tensor) -> torch.Tensor:
        """sum_{j=1..m} (E0 + j e/m) / (s + j) per group = e + (E0 - e s/m)(H_{s+m} - H_s)."""
        r = err / size.clamp(min=1)  # empty part (size 0) has err 0 and contributes 0
        return err + (e_before - r * starts) * F._harmonic_diff(starts, starts + size)

    def _aurc_parts(self) -> dict[str, float]:
        ok, err = self._groups_desc()
        size = ok + err
        n = float(size.sum())
        if n == 0:
            return dict(AURC=math.nan, lo=math.nan, hi=math.nan, apriori=math.nan, n=0.0, e=0.0)
        ends = size.cumsum(0)
        starts = ends - size
        e_before = err.cumsum(0) - err
        hist = self._aurc_sum(starts, size, e_before, err)
        # "correct first" inside a bin: ok samples add E0/(s+j), then the errors form a group
        # of size err starting at s + ok with error rate 1.
        mid = starts + ok
        lo = e_before * F._harmonic_diff(starts, mid) + self._aurc_sum(mid, err, e_before, err)
        # "errors first": err samples with rate 1, then ok samples adding (E0 + e)/(s + e + j).
        mid = starts + err
        hi = self._aurc_sum(starts, err, e_before, err) + (e_before + err) * F._harmonic_diff(mid, ends)
        apriori = ok * err / size * F._harmonic_diff(starts, ends)
        return dict(AURC=float(hist.sum()) / n, lo=float(lo.sum()) / n, hi=float(hi.sum()) / n,
                    apriori=float(apriori.sum()) / n, n=n, e=float(err.sum()))

    # -- results ------------------------------------------------------------------------------
    def compute(self, tpr: float = 0.95) -> dict[str, float]:
        """``{'AURC', 'EAURC', 'AUROC', 'AUPR', 'FPR@95TPR'}`` (AUPR is AUPR-Error, as
        :func:`.functional.aupr`; the FPR key follows ``tpr``). ``nan`` where undefined."""
        ok, err = self._groups_desc()
        parts = self._aurc_parts()
        out = dict(AURC=parts['AURC'])
        if parts['n']:
            out['EAURC'] = parts['AURC'] - F._optimal_aurc_counts(parts['n'], parts['e'])
        else:
            out['EAURC'] = math.nan
        out['AUROC'] = F._auroc_groups(ok, err)
        out['AUPR'] = F._ap_groups(err.flip(0), ok.flip(0))
        out[f'FPR@{round(tpr * 100):d}TPR'] = F._fpr_groups(ok, err, tpr)
        return out

    def bounds(self) -> dict[str, tuple[float, float]]:
        """Intervals ``(lo, hi)`` that contain the exact (per-pixel) AURC, E-AURC and AUROC.

        Plus ``'AURC_apriori'`` / ``'AUROC_apriori'`` as ``(0, bound)``: the bounds on
        ``|hist - exact|`` of the class docstring.
        """
        ok, err = self._groups_desc()
        parts = self._aurc_parts()
        p, q = float(ok.sum()), float(err.sum())
        if p == 0 or q == 0:
            au = (math.nan, math.nan)
            half = math.nan
        else:
            half = 0.5 * float((ok * err).sum()) / (p * q)
            a = F._auroc_groups(ok, err)
            au = (a - half, a + half)
        opt = F._optimal_aurc_counts(parts['n'], parts['e']) if parts['n'] else math.nan
        return dict(AURC=(parts['lo'], parts['hi']), EAURC=(parts['lo'] - opt, parts['hi'] - opt),
                    AUROC=au, AURC_apriori=(0.0, parts['apriori']), AUROC_apriori=(0.0, half))
