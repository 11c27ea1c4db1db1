"""The reduction every uqseg loss shares: a per-pixel (or per-row) loss map to mmseg's scalar."""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ['reduce_loss_map']


def reduce_loss_map(loss: torch.Tensor, valid: torch.Tensor, weight: Optional[torch.Tensor],
                    avg_non_ignore: bool, owner: str) -> torch.Tensor:
    """``sum(loss * valid * weight) / n``, ``n`` the number of valid entries (all entries with
    ``avg_non_ignore=False``), at least 1. ``weight`` (optional, e.g. mmseg's OHEM sampler) has
    the loss map's shape or one more singleton channel; like mmseg, the mean divides by the
    count, not the weight sum."""
    v = valid.to(loss.dtype)
    if weight is not None:
        w = weight[:, 0] if weight.dim() == loss.dim() + 1 else weight
        if w.shape != loss.shape:
            raise ValueError(f'{owner}: weight shape {tuple(weight.shape)} does not match {tuple(loss.shape)}')
        v = v * w.to(loss.dtype)
    denom = valid.sum() if avg_non_ignore else valid.numel()
    return (loss * v).sum() / max(float(denom), 1.0)
