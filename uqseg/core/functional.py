"""Functional uncertainty metrics: tensors in, Python floats out (``docs/metrics.md``).

Every function takes flat (or any-shape, flattened) tensors on any device and keeps the pixel
tensors there; only scalar results are moved to the host. Accumulation is in float64.

Inputs
    ``conf``     confidence in [0, 1] (top-label max p, or positive-class p for binary ECE).
    ``correct``  bool or 0/1 per sample (for :func:`calibration_error` any value in [0, 1]: the
                 positive-class label or a soft correctness).

Conventions (uqseg decides; documented here and in the spec)
    * Invalid input raises ``ValueError`` naming the argument and the bad value: NaN/Inf or
      out-of-range confidences, shape mismatch, non-binary ``correct`` where a ranking metric
      needs it, bad ``n_bins`` / ``norm`` / targets.
    * Empty input is *not* an error: every scalar metric returns ``nan`` (so a per-image mean can
      use ``nanmean`` over images whose pixels are all ignored), and :func:`risk_coverage_curve`
      returns two empty tensors. Likewise ``nan`` where a metric is undefined: AUROC / FPR with
      only one class present, AUPR without positives.
    * Calibration (Naeini et al. 2015; Guo et al. 2017): equal-width bins ``(k/n, (k+1)/n]``
      from :mod:`uqseg.core.binning` (1.0 in the last bin, 0 in bin 0).
    * Selective prediction (Geifman & El-Yaniv 2017; Galil et al. 2023): samples sorted by
      confidence, descending. Samples with *equal* confidence form a tie group and are resolved
      in expectation: inside a tie group of ``m`` samples with ``e`` errors, the first ``j``
      contribute ``j * e / m`` errors. Nothing depends on the input order.
    * AUROC / AUPR / FPR@TPR are threshold metrics: a threshold accepts or rejects a whole tie
      group, so their curves have one point per distinct confidence (the sklearn convention;
      AUROC's trapezoid equals Mann-Whitney with ties counted 1/2).
    * :func:`selective_metrics` and :func:`threshold_metrics` read several of these values off one
      sort of the samples (the same code as the single functions after their own sort).
"""
from __future__ import annotations

import math
from typing import Literal, Optional, Sequence

import numpy as np
import torch

from .binning import bin_sums, errors_from_bin_sums
from .checks import check_binary, check_n_bins, check_tpr, check_unit, flat_pair
from .ranking import auroc_from_groups, average_precision_from_groups, fpr_from_groups, optimal_aurc_from_counts

__all__ = [
    'calibration_error', 'overconfidence_error', 'adaptive_calibration_error',
    'brier_score', 'nll', 'check_probs_target', 'score_sums',
    'risk_coverage_curve', 'aurc', 'optimal_aurc', 'eaurc', 'auroc', 'aupr', 'fpr_at_tpr',
    'coverage_at_accuracy', 'risk_at_coverage', 'selective_metrics', 'threshold_metrics', 'nanmean',
]

# Relative slack when comparing an accuracy read off the expected-value curve with a target
# (e.g. 3/4 computed as (2 + 2 * 1/2) / 4 must still count as >= 0.75).
_ACC_TOL = 1e-12
_NAN = math.nan


# ----------------------------------------------------------------------------------------------
# calibration
# ----------------------------------------------------------------------------------------------
_NORM_KEY = {'l1': 'ECE', 'l2': 'RMSCE', 'max': 'MCE'}


def calibration_error(conf: torch.Tensor, correct: torch.Tensor, n_bins: int = 15,
                      norm: Literal['l1', 'l2', 'max'] = 'l1') -> float:
    """Equal-width binned calibration error (Naeini et al. 2015; ``docs/metrics.md#calibration-errors``).

    ``l1``: ECE = sum_k (n_k/N) |conf_k - acc_k|; ``l2``: RMSCE = sqrt(sum_k (n_k/N) gap_k^2);
    ``max``: MCE = max over non-empty bins of |gap_k|. Bins ``(k/n, (k+1)/n]``, bin 0 holds 0.
    ``correct`` may be soft (any value in [0, 1]), e.g. the label for positive-class ECE.
    """
    if norm not in _NORM_KEY:
        raise ValueError(f"norm must be 'l1', 'l2' or 'max', got {norm!r}")
    check_n_bins(n_bins)
    conf, correct = flat_pair(conf, correct, binary=False)
    return errors_from_bin_sums(bin_sums(conf, correct, n_bins))[_NORM_KEY[norm]]


def overconfidence_error(conf: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> float:
    """OE = sum_k (n_k/N) conf_k max(conf_k - acc_k, 0) (Thulasidasan et al. 2019; ASLP)."""
    check_n_bins(n_bins)
    conf, correct = flat_pair(conf, correct, binary=False)
    return errors_from_bin_sums(bin_sums(conf, correct, n_bins))['OE']


def _tie_groups(sorted_keys: torch.Tensor) -> torch.Tensor:
    """Sizes of the runs of equal values in a sorted 1-D tensor."""
    return torch.unique_consecutive(sorted_keys, return_counts=True)[1]


def _expected_cumsum(values: torch.Tensor, counts: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Expected sum of ``values`` over the first ``k`` sorted samples, ties in expectation.

    ``values`` are float64 in sorted order, ``counts`` the sizes of its tie groups, ``k`` an int64
    tensor of prefix lengths in [0, N]. Within the tie group (start ``s``, size ``m``, sum ``v``)
    that holds position ``k``, the prefix gets ``(k - s) * v / m`` of the group's sum.
    """
    csum = values.cumsum(0)
    if counts.numel() == values.numel():  # no ties: the plain prefix sums
        return torch.where(k > 0, csum[(k - 1).clamp(min=0)], torch.zeros((), dtype=csum.dtype, device=csum.device))
    ends = counts.cumsum(0)
    starts = ends - counts
    at_end = csum[ends - 1]
    before = torch.cat([at_end.new_zeros(1), at_end[:-1]])
    g = torch.searchsorted(ends, k, right=False).clamp(max=counts.numel() - 1)
    out = before[g] + ((k - starts[g]).to(torch.float64) * (at_end[g] - before[g])) / counts[g].to(torch.float64)
    return torch.where(k > 0, out, torch.zeros_like(out))


def _expected_prefix_sums(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """:func:`_expected_cumsum` at every ``k = 1..N`` (the whole risk-coverage curve), without the
    search: each sample's tie group is known from ``counts``."""
    csum = values.cumsum(0)
    n, g = values.numel(), counts.numel()
    if g == n:  # no ties
        return csum
    ends = counts.cumsum(0)
    at_end = csum[ends - 1]
    before = torch.cat([at_end.new_zeros(1), at_end[:-1]])
    rate = (at_end - before) / counts.to(torch.float64)
    gid = torch.repeat_interleave(torch.arange(g, device=values.device), counts)
    within = torch.arange(1, n + 1, device=values.device, dtype=torch.float64) - (ends - counts)[gid].to(torch.float64)
    return before[gid] + within * rate[gid]


def adaptive_calibration_error(conf: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> float:
    """Equal-mass (adaptive) ECE (Nixon et al. 2019; Mukhoti et al. 2020).

    Samples are sorted by confidence (ascending) and bin ``b`` (0-based) takes sorted positions
    ``[floor(b N / n), floor((b+1) N / n))``: sizes differ by at most one, the larger bins spread
    evenly; when ``N < n`` some bins are empty and are skipped. ACE = sum_b (n_b/N)|conf_b - acc_b|.
    A tie group cut by a bin boundary is shared in expectation (each side gets its share of the
    group's correct count, as in the risk-coverage curve), so the value depends only on the
    multiset of (conf, correct) pairs, never on the input order.
    """
    check_n_bins(n_bins)
    conf, correct = flat_pair(conf, correct, binary=False)
    n = conf.numel()
    if n == 0:
        return _NAN
    conf_s, order = torch.sort(conf)
    corr_s = correct[order]
    counts = _tie_groups(conf_s)
    bounds = torch.div(torch.arange(n_bins + 1, device=conf.device, dtype=torch.int64) * n,
                       n_bins, rounding_mode='floor')
    cum_conf = torch.cat([torch.zeros(1, dtype=torch.float64, device=conf.device),
                          conf_s.to(torch.float64).cumsum(0)])[bounds]
    cum_corr = _expected_cumsum(corr_s, counts, bounds)
    # per bin: n_b (conf_b - acc_b); empty bins give exactly 0
    gap = (cum_conf[1:] - cum_conf[:-1]) - (cum_corr[1:] - cum_corr[:-1])
    return float(gap.abs().sum() / n)


# ----------------------------------------------------------------------------------------------
# proper scoring rules
# ----------------------------------------------------------------------------------------------
def check_probs_target(probs: torch.Tensor, target: torch.Tensor) -> bool:
    """Check the inputs of the proper scoring rules; return whether they are binary.

    Multiclass: ``probs`` (N, C) or (N, C, d1, ...) in [0, 1] with ``target`` (N,) /
    (N, d1, ...) integer classes in [0, C). Binary: ``probs`` of the same shape as ``target``
    are positive-class probabilities and ``target`` is 0/1 (bool or int).
    """
    if not isinstance(probs, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError('probs and target must be torch.Tensors')
    if not probs.is_floating_point():
        raise ValueError(f'probs must be a floating-point tensor, got dtype {probs.dtype}')
    check_unit(probs.reshape(-1), 'probs')
    if probs.shape == target.shape:
        check_binary(target, 'target')
        return True
    if probs.dim() < 2 or target.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f'probs must be (N, C, ...) with target (N, ...), or both the same shape '
                         f'(binary); got probs {tuple(probs.shape)} and target {tuple(target.shape)}')
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f'target must hold integer class indices, got dtype {target.dtype}')
    c = probs.shape[1]
    if target.numel():
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= c:
            raise ValueError(f'target must lie in [0, {c - 1}], got {lo if lo < 0 else hi}')
    return False


def score_sums(probs: torch.Tensor, target: torch.Tensor, valid: Optional[torch.Tensor] = None,
               eps: float = 1e-12, logits: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[sum NLL, sum Brier, count, clamped]`` (float64, on ``probs``' device) over the valid
    samples.

    NLL = -log max(p_y, eps), ``clamped`` counting the valid samples whose ``p_y < eps`` (the
    clamp changed their term); with the multiclass ``logits`` whose softmax ``probs`` are, NLL =
    ``logsumexp_c z_c - z_y`` (the log-softmax: exact where ``p_y`` underflows, never clamped,
    ``clamped`` 0). Brier: binary ``(p - y)^2`` with ``p`` the positive-class
    probability (sklearn's ``brier_score_loss``, range [0, 1]); multiclass
    ``sum_c (p_c - [c = y])^2`` (range [0, 2]). Shapes as :func:`check_probs_target` (not
    checked here; the binary case is ``probs.shape == target.shape``); ``valid`` is a bool map
    of ``target``'s shape or None (all valid), and ``target`` may hold anything where it is
    False. The per-sample terms are computed in ``probs``' dtype, the sums in float64.
    """
    if probs.shape == target.shape:
        y = target.to(probs.dtype)
        pt = torch.mul(y, probs).add_((1 - y).mul_(1 - probs))  # p or 1 - p exactly (one term is 0)
        brier = (probs - y).square_()
    else:
        lab = target.long() if valid is None else target.long().masked_fill(~valid, 0)
        pt = probs.gather(1, lab.unsqueeze(1)).squeeze(1)
        brier = probs.square().sum(1).sub_(pt, alpha=2).add_(1)
    if logits is not None and probs.shape != target.shape:
        nll_ = torch.logsumexp(logits, 1).sub_(logits.gather(1, lab.unsqueeze(1)).squeeze(1))
        low = torch.zeros_like(nll_, dtype=torch.bool)
    else:
        low = pt < eps
        nll_ = pt.clamp(min=eps).log_().neg_()
    if valid is None:
        count = torch.tensor(float(nll_.numel()), dtype=torch.float64, device=nll_.device)
    else:
        nll_.masked_fill_(~valid, 0)
        brier.masked_fill_(~valid, 0)
        low &= valid
        count = valid.sum().to(torch.float64)
    return torch.stack([nll_.sum(dtype=torch.float64), brier.sum(dtype=torch.float64), count,
                        low.sum().to(torch.float64)])


def _checked_score_sums(probs: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    check_probs_target(probs, target)
    return score_sums(probs.to(torch.float64), target, eps=eps)


def brier_score(probs: torch.Tensor, target: torch.Tensor) -> float:
    """Brier score (Brier 1950): mean over samples of sum_c (p_c - onehot(y)_c)^2.

    Multiclass: ``probs`` (N, C[, ...]), ``target`` (N[, ...]) int class indices; range [0, 2].
    Binary: ``probs`` of the same shape as ``target`` are positive-class probabilities and the
    score is mean (p - y)^2 (sklearn's ``brier_score_loss``; range [0, 1]), i.e. half of the
    two-class multiclass value. ``nan`` for empty input.
    """
    nll_sum, brier_sum, n, _ = _checked_score_sums(probs, target, 1e-12).tolist()
    return brier_sum / n if n else _NAN


def nll(probs: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood, -mean log(max(p_y, eps)); shapes as :func:`brier_score`."""
    nll_sum, brier_sum, n, _ = _checked_score_sums(probs, target, eps).tolist()
    return nll_sum / n if n else _NAN


# ----------------------------------------------------------------------------------------------
# selective prediction (Geifman & El-Yaniv 2017; Galil et al. 2023)
# ----------------------------------------------------------------------------------------------
def _sorted_desc(conf: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one sort of the selective and ranking metrics: (conf descending, correct in that order,
    tie-group sizes). Every metric below reads its value off this triple. On the CPU the order
    comes from numpy's argsort (its SIMD sort is about 3x torch's at 10^6 samples); the order
    inside a tie group is irrelevant (ties are resolved in expectation)."""
    if conf.device.type == 'cpu' and correct.device.type == 'cpu':
        c = conf.detach().numpy()
        order = np.argsort(np.negative(c))
        conf_s = torch.from_numpy(c[order])
        return conf_s, torch.from_numpy(correct.detach().numpy()[order]), _tie_groups(conf_s)
    conf_s, order = torch.sort(conf, descending=True)
    return conf_s, correct[order], _tie_groups(conf_s)


def _curve_of(corr_s: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage and risk (float64) of sorted correctness, ties in expectation; N >= 1."""
    n = corr_s.numel()
    kf = torch.arange(1, n + 1, device=corr_s.device, dtype=torch.float64)
    errors = _expected_prefix_sums(1 - corr_s, counts)
    return kf / n, errors / kf


def _aurc_of(risk: torch.Tensor) -> float:
    return float(risk.mean()) if risk.numel() else _NAN


def _check_target_accuracy(target_accuracy: float) -> None:
    if not 0 <= target_accuracy <= 1:
        raise ValueError(f'target_accuracy must lie in [0, 1], got {target_accuracy}')


def _check_coverage(coverage: float) -> None:
    if not 0 < coverage <= 1:
        raise ValueError(f'coverage must lie in (0, 1], got {coverage}')


def _coverage_at_accuracy_of(cov: torch.Tensor, risk: torch.Tensor, target_accuracy: float) -> float:
    if cov.numel() == 0:
        return _NAN
    ok = (1 - risk) >= target_accuracy * (1 - _ACC_TOL)
    idx = torch.nonzero(ok).reshape(-1)
    return float(cov[idx[-1]]) if idx.numel() else 0.0


def _risk_at_coverage_of(risk: torch.Tensor, coverage: float) -> float:
    n = risk.numel()
    if n == 0:
        return _NAN
    k = min(max(math.ceil(coverage * n - 1e-9), 1), n)
    return float(risk[k - 1])


def _groups_of(corr_s: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tie group (sorted order): (number correct, number incorrect), float64 (group sums as
    differences of the prefix sums at the groups' ends)."""
    size = counts.to(torch.float64)
    if counts.numel() == corr_s.numel():  # no ties: every group is one sample
        return corr_s, 1 - corr_s
    at_end = corr_s.cumsum(0)[counts.cumsum(0) - 1]
    pos = torch.diff(at_end, prepend=at_end.new_zeros(1))
    return pos, size - pos


def risk_coverage_curve(conf: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage ``k/N`` and selective risk ``errors(k)/k`` for k = 1..N (float64, conf's device).

    Samples sorted by confidence descending; ``errors(k)`` counts ties in expectation
    (``docs/metrics.md#selective-prediction``), so the curve is linear in the error count across
    a tie group and does not depend on the input order. Empty input gives two empty tensors.
    """
    conf, correct = flat_pair(conf, correct, binary=True)
    if conf.numel() == 0:
        empty = torch.zeros(0, dtype=torch.float64, device=conf.device)
        return empty, empty.clone()
    _, corr_s, counts = _sorted_desc(conf, correct)
    return _curve_of(corr_s, counts)


def aurc(conf: torch.Tensor, correct: torch.Tensor) -> float:
    """Area under the risk-coverage curve, AURC = (1/N) sum_{k=1..N} risk(k) (Galil et al. 2023)."""
    _, risk = risk_coverage_curve(conf, correct)
    return _aurc_of(risk)


def optimal_aurc(conf: torch.Tensor, correct: torch.Tensor) -> float:
    """AURC of the perfect ordering of the same samples (depends only on N and the error count)."""
    conf, correct = flat_pair(conf, correct, binary=True)
    return optimal_aurc_from_counts(conf.numel(), float((1 - correct).sum()))


def eaurc(conf: torch.Tensor, correct: torch.Tensor) -> float:
    """Excess AURC: AURC - AURC of the perfect ordering, exact discrete (Geifman et al. 2019)."""
    conf, correct = flat_pair(conf, correct, binary=True)
    if conf.numel() == 0:
        return _NAN
    return aurc(conf, correct) - optimal_aurc_from_counts(conf.numel(), float((1 - correct).sum()))


def _groups_desc(conf: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tie group, by confidence descending: (number correct, number incorrect), float64."""
    _, corr_s, counts = _sorted_desc(conf, correct)
    return _groups_of(corr_s, counts)


def auroc(conf: torch.Tensor, correct: torch.Tensor) -> float:
    """AUROC of confidence separating correct (positive) from incorrect samples.

    Mann-Whitney U / (P Q) with ties counted 1/2 (= sklearn ``roc_auc_score``); ``nan`` when all
    samples are correct or all incorrect.
    """
    conf, correct = flat_pair(conf, correct, binary=True)
    if conf.numel() == 0:
        return _NAN
    return auroc_from_groups(*_groups_desc(conf, correct))


def aupr(conf: torch.Tensor, correct: torch.Tensor,
         positive: Literal['error', 'correct'] = 'error') -> float:
    """Average precision (area under the precision-recall step curve, sklearn's definition).

    Default ``positive='error'`` (AUPR-Error, Hendrycks & Gimpel 2017): errors are the positive
    class, scored by ``-conf`` (low confidence flags an error); equals
    ``average_precision_score(1 - correct, -conf)``. ``positive='correct'`` (AUPR-Success) scores
    correct samples by ``conf``. One PR point per distinct confidence (tie groups are accepted or
    rejected whole); ``nan`` without positives.
    """
    if positive not in ('error', 'correct'):
        raise ValueError(f"positive must be 'error' or 'correct', got {positive!r}")
    conf, correct = flat_pair(conf, correct, binary=True)
    if conf.numel() == 0:
        return _NAN
    ok, err = _groups_desc(conf, correct)
    if positive == 'correct':
        return average_precision_from_groups(ok, err)
    return average_precision_from_groups(err.flip(0), ok.flip(0))


def fpr_at_tpr(conf: torch.Tensor, correct: torch.Tensor, tpr: float = 0.95) -> float:
    """Fraction of errors accepted at the highest threshold that accepts >= ``tpr`` of correct ones.

    Positives are correct samples (score ``conf``); the threshold moves over distinct
    confidences, so a tie group is accepted whole (as sklearn ``roc_curve``). ``nan`` when only
    one class is present.
    """
    check_tpr(tpr)
    conf, correct = flat_pair(conf, correct, binary=True)
    if conf.numel() == 0:
        return _NAN
    return fpr_from_groups(*_groups_desc(conf, correct), tpr)


def coverage_at_accuracy(conf: torch.Tensor, correct: torch.Tensor, target_accuracy: float) -> float:
    """Largest coverage ``k/N`` whose selective accuracy ``1 - risk(k)`` is >= ``target_accuracy``.

    Read off :func:`risk_coverage_curve` at *every* k (ties in expectation), not only at the ends
    of tie groups: a prefix that cuts a tie group stands for a random choice inside it, as in
    AURC and :func:`risk_at_coverage`. Comparison allows a relative slack of 1e-12 for
    rounding. 0.0 if no k qualifies; ``nan`` for empty input.
    """
    _check_target_accuracy(target_accuracy)
    return _coverage_at_accuracy_of(*risk_coverage_curve(conf, correct), target_accuracy)


def risk_at_coverage(conf: torch.Tensor, correct: torch.Tensor, coverage: float) -> float:
    """Selective risk of the ``k = ceil(coverage N)`` most confident samples, ties in expectation.

    ``coverage`` in (0, 1]; ``k`` is computed as ``ceil(coverage N - 1e-9)`` so that e.g.
    0.3 * 10 = 3.0000000000000004 selects 3 samples, not 4. ``nan`` for empty input.
    """
    _check_coverage(coverage)
    _, risk = risk_coverage_curve(conf, correct)
    return _risk_at_coverage_of(risk, coverage)


def selective_metrics(conf: torch.Tensor, correct: torch.Tensor, accuracy_targets: Sequence[float] = (),
                      coverages: Sequence[float] = (), tpr: Optional[float] = None, curve: bool = False,
                      keys: bool = False) -> dict:
    """The selective and ranking metrics of one confidence from **one** sort (the functions above
    sort once each; a report of nine values would sort nine times).

    Returns ``AURC`` (:func:`aurc`), ``E-AURC`` (:func:`eaurc`), ``AUROC`` (:func:`auroc`),
    ``coverage_at_accuracy`` = ``{a: coverage_at_accuracy(conf, correct, a)}`` for each of
    ``accuracy_targets``, ``risk_at_coverage`` = ``{c: risk_at_coverage(conf, correct, c)}`` for
    each of ``coverages``, with ``tpr`` also ``FPR`` (:func:`fpr_at_tpr`), and with ``curve`` the
    ``(coverage, risk)`` of :func:`risk_coverage_curve`. The values are those functions' own: the
    same code reads them off the same sorted samples (``tests/core/test_selective.py`` checks
    equality). Arguments are checked before the sort; empty input gives NaN everywhere.
    ``keys=True``: ``conf`` is a ranking key (any real value, +-inf included, not NaN; e.g.
    :func:`uqseg.core.confidence_keys.confidence_key`), only its order and ties count.
    """
    for a in accuracy_targets:
        _check_target_accuracy(a)
    for c in coverages:
        _check_coverage(c)
    if tpr is not None:
        check_tpr(tpr)
    conf, correct = flat_pair(conf, correct, binary=True, unit=not keys)
    n = conf.numel()
    if n == 0:
        empty = torch.zeros(0, dtype=torch.float64, device=conf.device)
        out = {'AURC': _NAN, 'E-AURC': _NAN, 'AUROC': _NAN, 'coverage_at_accuracy': {a: _NAN for a in accuracy_targets},
               'risk_at_coverage': {c: _NAN for c in coverages}}
        if tpr is not None:
            out['FPR'] = _NAN
        if curve:
            out['curve'] = (empty, empty.clone())
        return out
    _, corr_s, counts = _sorted_desc(conf, correct)
    cov, risk = _curve_of(corr_s, counts)
    aurc_ = _aurc_of(risk)
    groups = _groups_of(corr_s, counts)
    out = {'AURC': aurc_, 'E-AURC': aurc_ - optimal_aurc_from_counts(n, float((1 - correct).sum())),
           'AUROC': auroc_from_groups(*groups),
           'coverage_at_accuracy': {a: _coverage_at_accuracy_of(cov, risk, a) for a in accuracy_targets},
           'risk_at_coverage': {c: _risk_at_coverage_of(risk, c) for c in coverages}}
    if tpr is not None:
        out['FPR'] = fpr_from_groups(*groups, tpr)
    if curve:
        out['curve'] = (cov, risk)
    return out


def threshold_metrics(conf: torch.Tensor, positive: torch.Tensor, tpr: float = 0.95,
                      keys: bool = False) -> dict[str, float]:
    """``AUROC`` (:func:`auroc`) and ``FPR`` (:func:`fpr_at_tpr`) of ``conf`` separating the
    ``positive`` samples from the others, from one sort; e.g. in-distribution (positive) vs OOD.
    ``keys=True``: ``conf`` is a ranking key, as in :func:`selective_metrics`."""
    check_tpr(tpr)
    conf, positive = flat_pair(conf, positive, binary=True, unit=not keys)
    if conf.numel() == 0:
        return {'AUROC': _NAN, 'FPR': _NAN}
    groups = _groups_desc(conf, positive)
    return {'AUROC': auroc_from_groups(*groups), 'FPR': fpr_from_groups(*groups, tpr)}


def nanmean(values) -> float:
    """Mean of the non-NaN values (e.g. per-image scores, NaN where undefined); NaN if none."""
    t = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else math.nan
