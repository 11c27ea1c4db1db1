"""Equal-width confidence binning shared by every calibration metric in uqseg.

Convention (``../shared/specs/methods.md`` section 5): with ``n`` bins, bin ``k`` holds
confidences in ``(k/n, (k+1)/n]``; bin 0 also holds 0, so confidence 1.0 lands in the last bin.
(torchmetrics uses ``[k/n, (k+1)/n)`` and puts 1.0 in an extra, hidden bin; the two agree on
every confidence that is not an exact bin edge.)

:func:`bin_index` is the definition (a binary search over the edges, ``torch.bucketize``);
:func:`fast_bin_index` gives the same bins from ``floor(conf n)`` and one correction, ~15x faster
on CPU, and is what the accumulators and metrics use.

Statistics are kept as per-bin sums (count, sum of confidence, sum of correctness), which are
mergeable: sums from any split of the data into batches or ranks add up to the sums of the whole.
From them:

* ECE   = sum_k (n_k / N) |conf_k - acc_k|
* MCE   = max over non-empty bins of |conf_k - acc_k|
* RMSCE = sqrt(sum_k (n_k / N) (conf_k - acc_k)^2)
* OE    = sum_k (n_k / N) conf_k max(conf_k - acc_k, 0)   (overconfidence error, ASLP paper)

where conf_k and acc_k are the mean confidence and accuracy of bin k. Empty bins contribute 0.
"""
from __future__ import annotations

import math

import torch

__all__ = ['bin_index', 'fast_bin_index', 'bin_sums', 'errors_from_bin_sums']


def bin_index(conf: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bin of each confidence: ``k`` such that ``k/n < conf <= (k+1)/n`` (0 for ``conf == 0``).

    The inner edges are cast to ``conf``'s dtype, so a confidence equal to an edge as stored in
    that dtype goes to the lower bin, whatever its decimal spelling.
    """
    if n_bins < 1:
        raise ValueError(f'n_bins must be >= 1, got {n_bins}')
    edges = (torch.arange(1, n_bins, dtype=torch.float64, device=conf.device) / n_bins).to(conf.dtype)
    return torch.bucketize(conf, edges, right=False)


def fast_bin_index(conf: torch.Tensor, n_bins: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """Same result as :func:`bin_index`, as ``dtype``, without its binary search (~15x faster on
    CPU). Used by every accumulator and metric; :func:`bin_index` stays the reference definition
    the tests compare it with. ``conf`` must lie in [0, 1] (the callers check it).

    For float32 / float64 ``conf`` and ``n_bins <= 2**20``, with ``e_j = fl(j / n)`` the edges of
    :func:`bin_index` (IEEE division is correctly rounded, so ``k / n`` evaluated in ``conf``'s
    dtype *is* ``e_k``) and ``k0 = min(floor(fl(conf n)), n - 1)``:

    * every edge ``e_j`` with ``j < k0`` lies below ``conf`` (``fl(conf n) >= j + 1`` means
      ``conf >= (j + 1)(1 - u) / n > e_j`` while ``2j + 1 < 1/u``, u the unit roundoff);
    * every edge ``e_j`` with ``j > k0`` is ``>= conf`` (``fl(conf n) < j`` means ``conf n < j``,
      and the float nearest to ``j / n`` cannot lie below a float that is below ``j / n``).

    So the bin is ``k0`` or ``k0 - 1`` (when ``conf <= e_k0``): one comparison, read off the sign
    of an exact difference (a float op; bool tensors are slow on CPU). About half the passes of
    a ceil-and-two-sided-correction; ``tests/test_pixel_metrics.py`` checks it against
    ``torch.bucketize`` on every edge and its float neighbours. Other dtypes (half-precision
    edges can be coarser than the bins) and more bins use :func:`bin_index`.
    """
    if conf.dtype not in (torch.float32, torch.float64) or n_bins > 2 ** 20:
        return bin_index(conf, n_bins).to(dtype)
    k = (conf * n_bins).floor_().clamp_(max=n_bins - 1)
    # sign(e_k - conf) in {-1, 0, 1}; conf <= e_k  <=>  sign >= 0  -> one bin down
    k.sub_(torch.div(k, n_bins).sub_(conf).sign_().add_(1).clamp_(max=1))
    return k.clamp_(min=0).to(dtype)  # conf == 0: bin 0


def bin_sums(conf: torch.Tensor, correct: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Per-bin ``[count, sum conf, sum correct]`` as a ``(3, n_bins)`` float64 tensor.

    ``conf`` and ``correct`` are flat tensors of equal length (``correct`` bool or 0/1 float,
    or any value in [0, 1] for positive-class calibration, where it is the label).
    Works on any device; nothing leaves it.
    """
    conf = conf.reshape(-1)
    correct = correct.reshape(-1)
    if conf.numel() != correct.numel():
        raise ValueError(f'conf has {conf.numel()} values but correct has {correct.numel()}')
    idx = fast_bin_index(conf, n_bins)
    out = torch.zeros(3, n_bins, dtype=torch.float64, device=conf.device)
    out[0] = torch.bincount(idx, minlength=n_bins).to(torch.float64)
    out[1] = torch.bincount(idx, weights=conf.to(torch.float64), minlength=n_bins)
    out[2] = torch.bincount(idx, weights=correct.to(torch.float64), minlength=n_bins)
    return out


def errors_from_bin_sums(sums: torch.Tensor) -> dict[str, float]:
    """ECE, MCE, RMSCE and OE from ``(3, n_bins)`` sums; NaN for all four when no value was seen."""
    sums = sums.to(torch.float64)
    count, conf_sum, correct_sum = sums[0], sums[1], sums[2]
    total = float(count.sum())
    if total == 0:
        nan = math.nan
        return dict(ECE=nan, MCE=nan, RMSCE=nan, OE=nan)
    nonempty = count > 0
    safe = count.clamp(min=1)
    conf_k = conf_sum / safe
    acc_k = correct_sum / safe
    gap = (conf_k - acc_k) * nonempty
    weight = count / total
    return dict(
        ECE=float((weight * gap.abs()).sum()),
        MCE=float(gap.abs()[nonempty].max()),
        RMSCE=float((weight * gap.square()).sum().sqrt()),
        OE=float((weight * conf_k * gap.clamp(min=0)).sum()),
    )
