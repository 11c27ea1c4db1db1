"""The reduction every uqseg loss shares: a per-pixel (or per-row) loss map to mmseg's scalar."""
from __future__ import annotations

import math
from typing import Optional

import torch

from .checks import value_range

__all__ = ['reduce_loss_map', 'check_channels']


def check_channels(cls_score: torch.Tensor, owner: str, hint: str = 'a diverged model'
                   ) -> tuple[torch.Tensor, float, float]:
    """A loss's ``(N, K, ...)`` input, float32 for half-precision inputs, and its (min, max) in one
    pass; non-finite values raise naming ``owner`` (NaN propagates into both)."""
    if cls_score.dim() < 2 or not cls_score.is_floating_point():
        raise ValueError(f'{owner}: cls_score must be float (N, K, ...) channels, got {tuple(cls_score.shape)} '
                         f'{cls_score.dtype}')
    z = cls_score.float() if cls_score.dtype in (torch.float16, torch.bfloat16) else cls_score
    lo, hi = (float(v) for v in value_range(z.detach())) if z.numel() else (0.0, 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f'{owner}: cls_score holds {int((~torch.isfinite(z)).sum())} non-finite values ({hint})')
    return z, lo, hi


def reduce_loss_map(loss: torch.Tensor, valid: torch.Tensor, weight: Optional[torch.Tensor],
                    avg_non_ignore: bool, owner: str, reduction: Optional[str] = None) -> torch.Tensor:
    """``sum(loss * valid * weight) / n``, ``n`` the number of valid entries (all entries with
    ``avg_non_ignore=False``), at least 1. ``weight`` (optional, e.g. mmseg's OHEM sampler) has
    the loss map's shape or one more singleton channel; like mmseg, the mean divides by the
    count, not the weight sum. ``reduction='none'`` (mmseg's ``reduction_override``, e.g. the OHEM
    sampler ranking pixels) returns the weighted map itself, 0 at ignored entries."""
    v = valid.to(loss.dtype)
    if weight is not None:
        w = weight[:, 0] if weight.dim() == loss.dim() + 1 else weight
        if w.shape != loss.shape:
            raise ValueError(f'{owner}: weight shape {tuple(weight.shape)} does not match {tuple(loss.shape)}')
        v = v * w.to(loss.dtype)
    if reduction == 'none':
        return loss * v
    if reduction not in (None, 'mean'):
        raise ValueError(f"{owner}: reduction_override must be 'none' or 'mean', got {reduction!r}")
    denom = valid.sum() if avg_non_ignore else valid.numel()
    return (loss * v).sum() / max(float(denom), 1.0)
