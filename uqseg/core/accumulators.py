"""Mergeable streaming accumulators for dataset-level ("pooled") uncertainty metrics.

Each accumulator keeps a fixed-size float64 ``state`` tensor whose size does not depend on the
number of pixels seen. States are plain sums, so

* ``a.merge(b)`` (in place) / ``a + b`` (new object) combine accumulators, and the result equals
  one pass over the concatenated data (up to float64 summation order);
* across ranks, ``torch.distributed.all_reduce(acc.state)`` (SUM) gives every rank the global
  state; then ``acc.compute()``.

``update`` takes already-flattened, already-filtered values (ignore_index pixels removed by the
caller, or masked with ``valid``; ``docs/metrics.md#pixel-metrics-in-mmseg``) and validates them like
:mod:`uqseg.core.functional` (``validate=False`` skips the checks for inputs the caller has
checked already, e.g. the mmseg metrics' reader).

* :class:`CalibrationAccumulator` - per-bin sums (:mod:`uqseg.core.binning`) -> ECE, MCE,
  RMSCE, OE and reliability-diagram data.
* :class:`ScoreSumAccumulator` - sums for NLL and Brier score.
* :class:`ConfidenceHistogram` - a fine confidence histogram split by correct / incorrect, from
  which AURC, E-AURC, AUROC, AUPR and FPR@95TPR are computed with each histogram bin taken as one
  tie group; :meth:`ConfidenceHistogram.bounds` gives the interval that must contain the exact
  values (see its docstring). It bins a [0, 1] confidence, or (``coordinate='key'``) a ranking
  key of :mod:`uqseg.core.confidence_keys` through the fixed map :func:`key_coordinate`.
"""
from __future__ import annotations

import math
from typing import Optional, TypeVar

import torch

from .binning import batched_calibration_errors, bin_sums, errors_from_bin_sums, histogram, reliability
from .checks import check_n_bins, check_tpr, flat_pair, fpr_key
from .functional import check_probs_target, score_sums
from .ranking import (
    aurc_of_groups,
    auroc_from_groups,
    average_precision_from_groups,
    fpr_from_groups,
    harmonic_diff,
    optimal_aurc_from_counts,
)

__all__ = ['CalibrationAccumulator', 'ScoreSumAccumulator', 'ConfidenceHistogram', 'key_coordinate', 'KEY_UNIT',
           'KEY_MAX', 'HISTOGRAM_COORDINATES']

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

    @classmethod
    def from_state(cls: type[_A], state: torch.Tensor, **config) -> _A:
        """An accumulator of this type (built with ``config``) holding ``state`` (copied)."""
        out = cls(**config)
        state = torch.as_tensor(state, dtype=torch.float64)
        if state.shape != out.state.shape:
            raise ValueError(f'{cls.__name__}{out._config()}: state must have shape '
                             f'{tuple(out.state.shape)}, got {tuple(state.shape)}')
        out.state = state.clone()
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


class _BinnedAccumulator(_SumAccumulator):
    """Base of the accumulators whose state is ``rows`` float64 rows of ``n_bins`` bins."""

    rows: int

    def __init__(self, n_bins: int, device: torch.device | str | None = None) -> None:
        self.n_bins = check_n_bins(n_bins)
        self.state = torch.zeros(self.rows, n_bins, dtype=torch.float64, device=device)

    def _config(self) -> tuple:
        return (self.n_bins,)

    @staticmethod
    def _checked(conf: torch.Tensor, correct: torch.Tensor, valid: Optional[torch.Tensor], binary: bool):
        """``(conf, correct, valid)`` after the input checks of :func:`.checks.flat_pair`, the
        values outside ``valid`` dropped first (so they may be anything)."""
        if valid is not None:
            conf, correct = conf[valid], correct[valid]
        return (*flat_pair(conf, correct, binary=binary), None)


class CalibrationAccumulator(_BinnedAccumulator):
    """Per-bin ``[count, sum conf, sum correct]`` (shape (3, n_bins)) for binned calibration.

    Equal-width bins ``(k/n, (k+1)/n]`` (``docs/metrics.md#binning``). ``compute()`` gives
    ECE, MCE, RMSCE, OE (``nan`` before any update); :meth:`reliability` the diagram data.
    """

    rows = 3

    def __init__(self, n_bins: int = 15, device: torch.device | str | None = None) -> None:
        super().__init__(n_bins, device)

    def update(self, conf: torch.Tensor, correct: torch.Tensor, valid: Optional[torch.Tensor] = None,
               hard: Optional[bool] = None, validate: bool = True) -> None:
        """Add values: ``conf`` in [0, 1], ``correct`` 0/1 or soft in [0, 1] (``hard``: see
        :func:`.binning.bin_sums`), only where the bool map ``valid`` is True (None: all)."""
        if validate:  # hard=True counts correct as 0/1: check that it is
            conf, correct, valid = self._checked(conf, correct, valid, binary=bool(hard))
        self._match_device(conf)
        self.state += bin_sums(conf, correct, self.n_bins, valid, hard)

    def compute(self) -> dict[str, float]:
        """``{'ECE', 'MCE', 'RMSCE', 'OE'}`` from the pooled bin sums (Naeini et al. 2015)."""
        return errors_from_bin_sums(self.state)

    @staticmethod
    def compute_batched(states: torch.Tensor) -> dict[str, torch.Tensor]:
        """The errors of many states at once: ``(..., 3, n_bins)`` -> tensors of shape ``(...)``
        (e.g. every image's own ECE from its per-image state)."""
        return batched_calibration_errors(states)

    def reliability(self) -> dict[str, torch.Tensor]:
        """Reliability-diagram data per bin (:func:`.binning.reliability`)."""
        return reliability(self.state)


class ScoreSumAccumulator(_SumAccumulator):
    """Sums ``[sum NLL, sum Brier, count, clamped]`` for the pooled mean NLL and Brier score
    (:func:`.functional.score_sums`; ``clamped``: samples whose NLL term the ``eps`` clamp
    changed, 0 when logits are given).

    ``update(probs, target)`` takes the shapes of :func:`.functional.brier_score` (multiclass
    (N, C, ...) with int targets, or binary positive-class probabilities); ``logits=`` the
    multiclass logits whose softmax ``probs`` are, for the exact NLL. ``nan`` before any update.
    """

    def __init__(self, eps: float = 1e-12, device: torch.device | str | None = None) -> None:
        self.eps = eps
        self.state = torch.zeros(4, dtype=torch.float64, device=device)

    def _config(self) -> tuple:
        return (self.eps,)

    def update(self, probs: torch.Tensor, target: torch.Tensor, valid: Optional[torch.Tensor] = None,
               validate: bool = True, logits: Optional[torch.Tensor] = None) -> None:
        """Add samples (shapes of :func:`.functional.check_probs_target`; ``valid`` a bool map of
        ``target``'s shape, or None)."""
        if validate:
            check_probs_target(probs, target if valid is None else target.masked_fill(~valid, 0))
            probs = probs.to(torch.float64)
            if logits is not None and logits.shape != probs.shape:
                raise ValueError(f'logits must have the shape of probs {tuple(probs.shape)}, got {tuple(logits.shape)}')
        self._match_device(probs)
        self.state += score_sums(probs, target, valid, self.eps, logits)

    def compute(self) -> dict[str, float]:
        """``NLL``, ``Brier`` (NaN before any sample) and ``NLL-clamped`` (a count)."""
        n = float(self.state[2])
        if n == 0:
            return {'NLL': math.nan, 'Brier': math.nan, 'NLL-clamped': 0}
        return {'NLL': float(self.state[0]) / n, 'Brier': float(self.state[1]) / n,
                'NLL-clamped': int(self.state[3])}


#: Unit and range of :func:`key_coordinate`: linear within about ``KEY_UNIT`` of 0, logarithmic
#: beyond, every key in ``[-KEY_MAX, KEY_MAX]`` resolved (``docs/metrics.md#ranking-keys-in-the-histogram``).
KEY_UNIT = 1.0
KEY_MAX = 1.0e4
_KEY_HALF_SPAN = 2 * math.asinh(KEY_MAX / KEY_UNIT)
#: What a :class:`ConfidenceHistogram` bins: a confidence in [0, 1] as it is, or a ranking key.
HISTOGRAM_COORDINATES = ('confidence', 'key')


def key_coordinate(key: torch.Tensor) -> torch.Tensor:
    """A ranking key (any float, +-inf included) mapped onto [0, 1], float64, non-decreasing::

        x = 1/2 + asinh(k / KEY_UNIT) / (2 asinh(KEY_MAX / KEY_UNIT)),  clamped to [0, 1]

    (0 and 1 hold the keys beyond ``-KEY_MAX`` / ``KEY_MAX``). With ``n`` equal-width bins a bin
    spans ``dk = 2 asinh(KEY_MAX) sqrt(1 + k^2) / n`` of the key: 0.002 at ``k = 0`` and 0.2 %
    of ``|k|`` beyond ``|k| = 10`` for n = 10,000, so logit gaps of 20 and 20.1 (max-prob 1.0 in
    float32 and float64 alike) fall in different bins. Being monotone, it keeps every bound of
    :class:`ConfidenceHistogram` (a bin is a tie group of the keys it holds).
    """
    k = key.to(torch.float64)
    return torch.asinh(k / KEY_UNIT if KEY_UNIT != 1.0 else k).div_(_KEY_HALF_SPAN).add_(0.5).clamp_(0, 1)


class ConfidenceHistogram(_BinnedAccumulator):
    """Confidence histogram split by correctness: ``state[0]`` correct, ``state[1]`` incorrect.

    Bins are the equal-width ``(k/n, (k+1)/n]`` of :mod:`.binning` (default n = 10000, 160 kB),
    of the confidence itself (``coordinate='confidence'``, values in [0, 1]) or of
    :func:`key_coordinate` of a ranking key (``coordinate='key'``: values are keys of
    :func:`uqseg.core.confidence_keys.confidence_key`, any float but NaN), which resolves the
    near-certain predictions whose confidence is 1.0 in floating point. Histograms of the two
    coordinates do not merge.
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

    rows = 2

    def __init__(self, n_bins: int = 10000, device: torch.device | str | None = None,
                 coordinate: str = 'confidence') -> None:
        if coordinate not in HISTOGRAM_COORDINATES:
            raise ValueError(f'coordinate must be one of {HISTOGRAM_COORDINATES}, got {coordinate!r}')
        super().__init__(n_bins, device)
        self.coordinate = coordinate

    def _config(self) -> tuple:
        return (self.n_bins, self.coordinate)

    def update(self, conf: torch.Tensor, correct: torch.Tensor, valid: Optional[torch.Tensor] = None,
               validate: bool = True) -> None:
        """Add values where the bool map ``valid`` is True: ``conf`` in [0, 1] (a ranking key for
        ``coordinate='key'``), ``correct`` 0/1."""
        keys = self.coordinate == 'key'
        if validate:
            if valid is not None:
                conf, correct = conf[valid], correct[valid]
            conf, correct = flat_pair(conf, correct, binary=True, unit=not keys)
            valid = None
        self._match_device(conf)
        self.state += histogram(key_coordinate(conf) if keys else conf, self.n_bins, valid, split=correct)

    # -- helpers ------------------------------------------------------------------------------
    def _groups_desc(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(correct, incorrect) counts of the non-empty bins, highest confidence first (CPU)."""
        s = self.state.detach().cpu().flip(1)
        keep = s.sum(0) > 0
        return s[0, keep], s[1, keep]

    @staticmethod
    def _layout(ok: torch.Tensor, err: torch.Tensor):
        size = ok + err
        ends = size.cumsum(0)
        return size, ends, ends - size, err.cumsum(0) - err

    # -- results ------------------------------------------------------------------------------
    def compute(self, tpr: float = 0.95) -> dict[str, float]:
        """``{'AURC', 'EAURC', 'AUROC', 'AUPR', 'FPR@95TPR'}`` (AUPR is AUPR-Error, as
        :func:`.functional.aupr`; the FPR key follows ``tpr``). ``nan`` where undefined."""
        check_tpr(tpr)
        ok, err = self._groups_desc()
        n, e = float(ok.sum() + err.sum()), float(err.sum())
        if n == 0:
            return dict(AURC=math.nan, EAURC=math.nan, AUROC=math.nan, AUPR=math.nan, **{fpr_key(tpr): math.nan})
        size, ends, starts, e_before = self._layout(ok, err)
        aurc = float(aurc_of_groups(starts, size, e_before, err).sum()) / n
        return {'AURC': aurc, 'EAURC': aurc - optimal_aurc_from_counts(n, e), 'AUROC': auroc_from_groups(ok, err),
                'AUPR': average_precision_from_groups(err.flip(0), ok.flip(0)),
                fpr_key(tpr): fpr_from_groups(ok, err, tpr)}

    def bounds(self) -> dict[str, tuple[float, float]]:
        """Intervals ``(lo, hi)`` that contain the exact (per-pixel) AURC, E-AURC and AUROC.

        Plus ``'AURC_apriori'`` / ``'AUROC_apriori'`` as ``(0, bound)``: the bounds on
        ``|hist - exact|`` of the class docstring.
        """
        ok, err = self._groups_desc()
        p, q = float(ok.sum()), float(err.sum())
        n = p + q
        if n == 0:
            nan2 = (math.nan, math.nan)
            return dict(AURC=nan2, EAURC=nan2, AUROC=nan2, AURC_apriori=(0.0, math.nan),
                        AUROC_apriori=(0.0, math.nan))
        size, ends, starts, e_before = self._layout(ok, err)
        # "correct first" inside a bin: ok samples add E0/(s+j), then the errors form a group
        # of size err starting at s + ok with error rate 1.
        mid = starts + ok
        lo = float((e_before * harmonic_diff(starts, mid) + aurc_of_groups(mid, err, e_before, err)).sum()) / n
        # "errors first": err samples with rate 1, then ok samples adding (E0 + e)/(s + e + j).
        mid = starts + err
        hi = float((aurc_of_groups(starts, err, e_before, err) + (e_before + err) * harmonic_diff(mid, ends)).sum()) / n
        apriori = float((ok * err / size * harmonic_diff(starts, ends)).sum()) / n
        if p == 0 or q == 0:
            au = (math.nan, math.nan)
            half = math.nan
        else:
            half = 0.5 * float((ok * err).sum()) / (p * q)
            a = auroc_from_groups(ok, err)
            au = (a - half, a + half)
        opt = optimal_aurc_from_counts(n, q)
        return dict(AURC=(lo, hi), EAURC=(lo - opt, hi - opt), AUROC=au, AURC_apriori=(0.0, apriori),
                    AUROC_apriori=(0.0, half))

    def risk_coverage(self) -> dict[str, torch.Tensor]:
        """Risk-coverage curve (CPU float64): points at the end of every non-empty bin, highest
        confidence first (each bin is one tie group, so the curve between them is the expected
        one), ``coverage`` / ``risk``; the curve of the perfect ordering, ``coverage_opt`` /
        ``risk_opt``, on a grid of up to 1000 points; and the overall ``error_rate``."""
        ok, err = self._groups_desc()
        n = float(ok.sum() + err.sum())
        if n == 0:
            e = torch.zeros(0, dtype=torch.float64)
            return dict(coverage=e, risk=e, coverage_opt=e, risk_opt=e, error_rate=math.nan)
        cum_n, cum_e = (ok + err).cumsum(0), err.cumsum(0)
        e_tot = float(err.sum())
        k = torch.linspace(1, n, steps=int(min(n, 1000)), dtype=torch.float64).round().unique()
        zero = torch.zeros(1, dtype=torch.float64)
        return dict(coverage=torch.cat([zero, cum_n / n]), risk=torch.cat([cum_e[:1] / cum_n[:1], cum_e / cum_n]),
                    coverage_opt=k / n, risk_opt=(k - (n - e_tot)).clamp(min=0) / k, error_rate=e_tot / n)
