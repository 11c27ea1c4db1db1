"""Ranking metrics from per-group counts, shared by the exact metrics and the histograms.

A *group* is a set of samples with one score: a tie group of :mod:`uqseg.core.functional` or
a bin of :class:`uqseg.core.accumulators.ConfidenceHistogram`. Groups come in descending score
order as float64 count tensors ``pos`` / ``neg`` (or ``ok`` / ``err``). Conventions:
``docs/metrics.md#ranking-metrics`` and ``#selective-prediction``.
"""
from __future__ import annotations

import math

import torch

__all__ = ['harmonic_diff', 'optimal_aurc_from_counts', 'aurc_of_groups', 'auroc_from_groups',
           'average_precision_from_groups', 'fpr_from_groups']


def harmonic_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """H_b - H_a = sum_{k=a+1..b} 1/k for float64 tensors of non-negative integers a <= b.

    digamma(b+1) - digamma(a+1) for small ``a``; for ``a >= 1000`` the difference of the
    asymptotic series H_x = ln x + gamma + 1/(2x) - 1/(12x^2) + O(x^-4) written without
    cancellation (log1p), which keeps full relative precision when b - a << a (e.g. 1e9 pixels).
    """
    a, b = a.to(torch.float64), b.to(torch.float64)
    small = torch.special.digamma(b + 1) - torch.special.digamma(a + 1)
    a_ = a.clamp(min=1.0)
    d = b - a
    large = (torch.log1p(d / a_) - d / (2 * a_ * b.clamp(min=1.0))
             + d * (a_ + b) / (12 * a_.square() * b.clamp(min=1.0).square()))
    return torch.where(a >= 1000, large, small)


def optimal_aurc_from_counts(n: float, n_err: float) -> float:
    """AURC of the perfect ordering (all correct first): (1/N) sum_{k=N-E+1..N} (k - (N-E))/k.

    = (1/N) [E - (N - E)(H_N - H_{N-E})]; exact sum for small N, digamma difference otherwise.
    """
    if n == 0:
        return math.nan
    n_ok = n - n_err
    if n <= 1_000_000:
        k = torch.arange(int(n_ok) + 1, int(n) + 1, dtype=torch.float64)
        return float(((k - n_ok) / k).sum() / n)
    h = harmonic_diff(torch.tensor(n_ok, dtype=torch.float64), torch.tensor(n, dtype=torch.float64))
    return float((n_err - n_ok * h) / n)


def aurc_of_groups(starts: torch.Tensor, size: torch.Tensor, e_before: torch.Tensor,
                   err: torch.Tensor) -> torch.Tensor:
    """Per group, sum_{j=1..m} (E0 + j e/m) / (s + j) = e + (E0 - e s/m)(H_{s+m} - H_s).

    The group's contribution to N * AURC with ties in expectation: it starts after ``starts``
    samples (``s``), holds ``size`` (``m``) of them with ``err`` (``e``) errors, and ``e_before``
    (``E0``) errors come before it. An empty group (size 0, err 0) contributes 0.
    """
    r = err / size.clamp(min=1)
    return err + (e_before - r * starts) * harmonic_diff(starts, starts + size)


def auroc_from_groups(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Mann-Whitney AUROC from per-group counts in descending score order; ties count 1/2."""
    p, q = float(pos.sum()), float(neg.sum())
    if p == 0 or q == 0:
        return math.nan
    neg_below = neg.sum() - neg.cumsum(0)  # negatives with strictly lower score
    return float((pos * (neg_below + 0.5 * neg)).sum() / (p * q))


def average_precision_from_groups(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Average precision sum_g (R_g - R_{g-1}) P_g, one point per group (sklearn's step form)."""
    p = float(pos.sum())
    if p == 0:
        return math.nan
    tp, fp = pos.cumsum(0), neg.cumsum(0)
    prec = tp / (tp + fp).clamp(min=1e-300)
    return float((pos / p * prec).sum())


def fpr_from_groups(pos: torch.Tensor, neg: torch.Tensor, tpr: float) -> float:
    """FPR at the first threshold (descending) whose TPR >= ``tpr``."""
    p, q = float(pos.sum()), float(neg.sum())
    if p == 0 or q == 0:
        return math.nan
    tprs = pos.cumsum(0) / p
    idx = int(torch.searchsorted(tprs, torch.tensor([tpr], dtype=torch.float64, device=tprs.device)))
    idx = min(idx, tprs.numel() - 1)
    return float(neg[: idx + 1].sum() / q)
