"""Equal-width confidence binning shared by every calibration metric in uqseg.

Convention (``docs/metrics.md#binning``): with ``n`` bins, bin ``k`` holds
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
from typing import Optional

import torch

from .checks import check_n_bins

__all__ = ['bin_index', 'fast_bin_index', 'bin_keys', 'bin_sums', 'histogram', 'batched_calibration_errors',
           'errors_from_bin_sums', 'reliability']


def bin_index(conf: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bin of each confidence: ``k`` such that ``k/n < conf <= (k+1)/n`` (0 for ``conf == 0``).

    The inner edges are cast to ``conf``'s dtype, so a confidence equal to an edge as stored in
    that dtype goes to the lower bin, whatever its decimal spelling.
    """
    check_n_bins(n_bins)
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
    a ceil-and-two-sided-correction; ``tests/core/test_binning.py`` checks it against
    ``torch.bucketize`` on every edge and its float neighbours. Other dtypes (half-precision
    edges can be coarser than the bins) and more bins use :func:`bin_index`.
    """
    if conf.dtype not in (torch.float32, torch.float64) or n_bins > 2 ** 20:
        return bin_index(conf, n_bins).to(dtype)
    k = (conf * n_bins).floor_().clamp_(max=n_bins - 1)
    # sign(e_k - conf) in {-1, 0, 1}; conf <= e_k  <=>  sign >= 0  -> one bin down
    k.sub_(torch.div(k, n_bins).sub_(conf).sign_().add_(1).clamp_(max=1))
    return k.clamp_(min=0).to(dtype)  # conf == 0: bin 0


def bin_keys(conf: torch.Tensor, n_bins: int, split: Optional[torch.Tensor] = None,
             valid: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, int]:
    """Flat int32 keys per value and the number of keys: ``(key, n_keys)``.

    Without ``split`` the key is the bin; with a 0/1 ``split`` map it is ``2 * bin + split``.
    Values outside ``valid`` (False) get the extra key ``n_keys - 1``, which the callers drop, so
    nothing is gathered. The keys are int32 (conversions from float and from an int64 label are
    cheap on CPU, unlike int64 arithmetic), which ``bincount`` takes as they are.
    """
    key = fast_bin_index(conf.reshape(-1), n_bins, torch.int32)
    if split is not None:
        key.mul_(2).add_(split.reshape(-1).to(torch.int32))
    n_keys = (1 if split is None else 2) * n_bins + 1
    if valid is not None:
        key.masked_fill_(~valid.reshape(-1), n_keys - 1)
    return key, n_keys


def bin_sums(conf: torch.Tensor, correct: torch.Tensor, n_bins: int, valid: Optional[torch.Tensor] = None,
             hard: Optional[bool] = None) -> torch.Tensor:
    """Per-bin ``[count, sum conf, sum correct]`` (3, n_bins) float64 over the ``valid`` values.

    ``conf`` and ``correct`` have the same number of values (any shape; ``conf`` in [0, 1], not
    checked here); ``valid=None`` takes every value. ``correct`` is 0/1 on valid values
    (``hard=True``: correctness, or the label for positive-class calibration; one key per
    (bin, correct) value, two bincounts; any value outside ``valid``) or soft, any value in
    [0, 1] (``hard=False``, three bincounts). ``hard=None`` infers it (bool and integer tensors
    are hard; a float tensor is hard if all its values are 0 or 1). Works on any device.
    """
    correct = correct.reshape(-1)
    if conf.numel() != correct.numel():
        raise ValueError(f'conf has {conf.numel()} values but correct has {correct.numel()}')
    out = torch.empty(3, n_bins, dtype=torch.float64, device=conf.device)
    w = conf.reshape(-1).to(torch.float64)  # bincount weights: sums in float64
    if hard is None:
        hard = (correct.dtype == torch.bool or not correct.is_floating_point()
                or bool(((correct == 0) | (correct == 1)).all()))
    if hard:
        key, m = bin_keys(conf, n_bins, correct, valid)
        pair = torch.bincount(key, minlength=m)[:2 * n_bins].view(n_bins, 2).to(torch.float64)
        out[0] = pair.sum(1)
        out[2] = pair[:, 1]
        out[1] = torch.bincount(key, weights=w, minlength=m)[:2 * n_bins].view(n_bins, 2).sum(1)
    else:
        key, m = bin_keys(conf, n_bins, None, valid)
        out[0] = torch.bincount(key, minlength=m)[:n_bins].to(torch.float64)
        out[2] = torch.bincount(key, weights=correct.to(torch.float64), minlength=m)[:n_bins]
        out[1] = torch.bincount(key, weights=w, minlength=m)[:n_bins]
    return out


def histogram(conf: torch.Tensor, n_bins: int, valid: Optional[torch.Tensor] = None,
              split: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Counts of ``conf`` over the valid values in the bins above, float64.

    Without ``split``: shape (n_bins,). With a bool or 0/1 ``split`` map: shape (2, n_bins),
    row 0 the values where ``split`` is 1 (e.g. correct) and row 1 the others (the state of
    :class:`uqseg.core.accumulators.ConfidenceHistogram`).
    """
    key, m = bin_keys(conf, n_bins, split, valid)
    if split is None:
        return torch.bincount(key, minlength=m)[:n_bins].to(torch.float64)
    pair = torch.bincount(key, minlength=m)[:2 * n_bins].view(n_bins, 2)
    return pair.t().flip(0).to(torch.float64)  # row 0: split 1, row 1: split 0


def batched_calibration_errors(sums: torch.Tensor) -> dict[str, torch.Tensor]:
    """ECE, MCE, RMSCE and OE of every ``(3, n_bins)`` block of ``sums`` (shape (..., 3, n_bins)).

    Returns float64 tensors of shape ``sums.shape[:-2]``; NaN where a block has no value.
    """
    sums = sums.to(torch.float64)
    count, conf_sum, correct_sum = sums[..., 0, :], sums[..., 1, :], sums[..., 2, :]
    total = count.sum(-1, keepdim=True)
    nonempty = count > 0
    safe = count.clamp(min=1)
    conf_k = conf_sum / safe
    gap = (conf_k - correct_sum / safe) * nonempty
    weight = count / total.clamp(min=1)
    empty = total[..., 0] == 0
    nan = torch.full_like(total[..., 0], math.nan)
    out = dict(ECE=(weight * gap.abs()).sum(-1),
               MCE=gap.abs().amax(-1) if gap.shape[-1] else nan.clone(),
               RMSCE=(weight * gap.square()).sum(-1).sqrt(),
               OE=(weight * conf_k * gap.clamp(min=0)).sum(-1))
    return {k: torch.where(empty, nan, v) for k, v in out.items()}


def errors_from_bin_sums(sums: torch.Tensor) -> dict[str, float]:
    """ECE, MCE, RMSCE and OE from ``(3, n_bins)`` sums as floats; NaN for all four when no
    value was seen (:func:`batched_calibration_errors` of one block)."""
    return {k: float(v) for k, v in batched_calibration_errors(sums).items()}


def reliability(sums: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reliability-diagram data of ``(3, n_bins)`` sums (CPU float64, length n_bins each).

    ``count``, ``conf`` (mean confidence) and ``acc`` (accuracy), both NaN in empty bins, and
    ``lower`` / ``upper``, the bin edges k/n and (k+1)/n.
    """
    s = torch.as_tensor(sums).detach().to('cpu', torch.float64)
    if s.dim() != 2 or s.shape[0] != 3:
        raise ValueError(f'sums must have shape (3, n_bins), got {tuple(s.shape)}')
    count = s[0].clone()
    safe = torch.where(count > 0, count, torch.full_like(count, math.nan))
    edges = torch.arange(s.shape[1] + 1, dtype=torch.float64) / s.shape[1]
    return dict(count=count, conf=s[1] / safe, acc=s[2] / safe, lower=edges[:-1], upper=edges[1:])
