"""Exact (per-pixel) references for the histogram ranking metrics, and the error their bins allow.

A ``n_bins`` histogram ranks values of one bin as ties, so its AUROC differs from the exact one
by at most 1/2 per (positive, negative) pair sharing a bin, and its FPR at a TPR by at most the
negatives of the threshold's bin. The bounds below count the neighbouring bins too: a value on a
bin edge may fall on either side of it in float32.
"""
import numpy as np


def bins_of(conf, n_bins: int) -> np.ndarray:
    return np.clip(np.floor(np.asarray(conf, np.float64) * n_bins), 0, n_bins - 1).astype(np.int64)


def _near(counts: np.ndarray) -> np.ndarray:
    """Per bin, the count of that bin and its two neighbours."""
    padded = np.pad(counts, 1)
    return padded[:-2] + padded[1:-1] + padded[2:]


def auroc_tie_bound(pos_conf, neg_conf, n_bins: int = 10000) -> float:
    """The largest AUROC error of an ``n_bins`` histogram over these positives and negatives."""
    pos = np.bincount(bins_of(pos_conf, n_bins), minlength=n_bins).astype(np.float64)
    neg = np.bincount(bins_of(neg_conf, n_bins), minlength=n_bins).astype(np.float64)
    return 0.5 * float((pos * _near(neg)).sum()) / (pos.sum() * neg.sum())


def brute_fpr_at_tpr(pos_conf, neg_conf, tpr: float = 0.95) -> tuple[float, float]:
    """``(FPR, threshold)``: the fraction of negatives accepted (``conf >= t``) at the highest
    threshold ``t`` that accepts at least ``tpr`` of the positives, by trying every value."""
    pos, neg = np.asarray(pos_conf, np.float64), np.asarray(neg_conf, np.float64)
    for t in np.unique(pos)[::-1]:
        if np.mean(pos >= t) >= tpr:
            return float(np.mean(neg >= t)), float(t)
    raise AssertionError('unreachable: the lowest positive accepts every positive')


def fpr_bin_bound(neg_conf, threshold: float, n_bins: int = 10000) -> float:
    """The largest FPR error of an ``n_bins`` histogram: the negatives near the threshold's bin."""
    neg = np.bincount(bins_of(neg_conf, n_bins), minlength=n_bins).astype(np.float64)
    return float(_near(neg)[bins_of([threshold], n_bins)[0]]) / neg.sum()
