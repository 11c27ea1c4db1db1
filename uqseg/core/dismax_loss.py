"""The DisMax / IsoMax+ training loss: cross-entropy of ``softmax(E * z)`` with the entropic scale
``E`` (10 in both papers), on the output ``z = L / T`` of a
:class:`~uqseg.core.output_layers.PrototypeDistanceLayer` (``T = 1`` while training), averaged
over valid pixels (``ignore_index`` excluded). As the papers' code, ``E`` scales the layer's
output, and inference uses ``softmax(z)`` without it; a layer built with a temperature other
than 1 trains on ``E L / T``.

Soft targets ``q`` of the scores' shape (rows summing to 1: a classifier's mixup or FPR mosaics)
give ``KL(q || softmax(E z)) = sum_k q_k (log q_k - log softmax(E z)_k)`` per row (``0 log 0 = 0``),
the cross-entropy for one-hot rows. With FPR (the DisMax paper: half the batch 2x2 mosaics with
target 1/4 of each quadrant's one-hot, loss ``(CE(first half) + KL(q || p)(second half)) / 2``) the
mean over the rows is the paper's loss for two equal halves (an odd batch weights each row the
same). Conventions: ``docs/dismax.md``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .checks import class_targets, reject_unknown_kwargs
from .loss_reduction import check_channels, reduce_loss_map

__all__ = ['DisMaxLoss']

Tensor = torch.Tensor

_LOGIT_TOL = 1e-5  # distance logits are <= 0 (up to rounding)


class DisMaxLoss(nn.Module):
    """``CE(softmax(E z), y)`` on distance logits ``(N, K, H, W)`` or ``(N, K)``; soft targets ``q``
    of the scores' shape: ``KL(q || softmax(E z))``.

    Args:
        entropic_scale: ``E`` (10).
        loss_weight, loss_name, avg_non_ignore: as mmseg's losses.
    """

    def __init__(self, entropic_scale: float = 10.0, loss_weight: float = 1.0, loss_name: str = 'loss_dismax',
                 avg_non_ignore: bool = True, **unknown) -> None:
        super().__init__()
        reject_unknown_kwargs(type(self), unknown, hint=(
            "In an mmengine config these usually come from a base config's loss_decode merged into this "
            "dict: write loss_decode=dict(_delete_=True, type='DisMaxLoss', ...)."))
        if not float(entropic_scale) > 0:
            raise ValueError(f'DisMaxLoss: entropic_scale must be > 0, got {entropic_scale!r}')
        self.entropic_scale = float(entropic_scale)
        self.loss_weight, self._loss_name, self.avg_non_ignore = float(loss_weight), loss_name, bool(avg_non_ignore)

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def extra_repr(self) -> str:
        return f'entropic_scale={self.entropic_scale}, loss_weight={self.loss_weight}'

    def forward(self, cls_score: Tensor, label: Tensor, weight: Optional[Tensor] = None,
                ignore_index: int = 255, **kwargs) -> Tensor:
        z, lo, hi = check_channels(cls_score, 'DisMaxLoss')
        y, valid, soft = class_targets(label, z.shape, z.shape[1], ignore_index, 'DisMaxLoss')
        if hi > _LOGIT_TOL:
            raise ValueError(
                f'DisMaxLoss needs distance logits (<= 0), the output of a DisMaxLayer or IsoMaxPlusLayer, but got '
                f"values up to {hi:.4g}: give the head output_layer=dict(type='DisMaxLayer') "
                "(decode_head=dict(type='OutputLayerHead', head=dict(...), output_layer=...))")
        if soft:
            loss = F.kl_div(F.log_softmax(self.entropic_scale * z, 1), y.to(z.dtype), reduction='none').sum(1)
        else:
            loss = F.cross_entropy(self.entropic_scale * z, y, reduction='none')
        return self.loss_weight * reduce_loss_map(loss, valid, weight, self.avg_non_ignore, 'DisMaxLoss',
                                                  kwargs.get('reduction_override'))
