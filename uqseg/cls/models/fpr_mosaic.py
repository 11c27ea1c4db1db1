"""FPR mosaics (Macedo, Zanchettin, Ludermir 2022, DisMax): a batch augment of mmpretrain's
``ClsDataPreprocessor``.

The first ``N // 2`` samples of the batch stay as they are; each of the other ``N - N // 2``
becomes a 2x2 mosaic of four images of the (original) batch, each resized to its quadrant, and its
target the mean of the four images' scores::

    x_i = [[r(x_a), r(x_b)], [r(x_c), r(x_d)]],     q_i = (s_a + s_b + s_c + s_d) / 4

(``s`` the one-hot, or already soft, scores ``(N, K)``: a mosaic of one-hot rows has 1/4 of each
quadrant's label). With :class:`~uqseg.cls.models.losses.DisMaxLoss` the batch's loss is the mean
over the rows of ``KL(q || softmax(E z))``, the paper's ``(CE(first half) + KL(q || p)(second
half)) / 2`` for two equal halves.

Choices where the paper is silent:

* **which images**: for each quadrant position one ``torch.randperm(N)`` of the whole batch (its
  first ``N - N // 2`` entries), so a position takes distinct images across the mosaics and a
  mosaic may repeat an image (always for ``N = 1``, whose one sample becomes a mosaic of itself);
  random numbers from torch's global generator, as mmpretrain's Mixup / CutMix (seeded by the
  runner's ``randomness``);
* **resizing**: ``F.interpolate`` to the quadrant ``(H // 2, W // 2)`` (the bottom / right
  quadrants take the odd row / column), ``mode='bilinear'`` by default (any of ``'nearest'``,
  ``'nearest-exact'``, ``'bilinear'``, ``'bicubic'``, ``'area'``), anti-aliased for bilinear /
  bicubic (``antialias=True``; the other modes have no such option, ``'area'`` averages by
  itself);
* **targets**: 1/4 per quadrant, whatever the quadrants' pixel counts (odd sizes).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from mmpretrain.registry import BATCH_AUGMENTS

__all__ = ['FPRMosaic']

_MODES = ('nearest', 'nearest-exact', 'bilinear', 'bicubic', 'area')


@BATCH_AUGMENTS.register_module()
class FPRMosaic:
    """The second half of the batch as 2x2 mosaics (see the module docstring).

    Args:
        mode: ``F.interpolate``'s mode for shrinking an image to a quadrant (default 'bilinear').
        antialias: anti-alias the bilinear / bicubic downscaling (default True).
    """

    def __init__(self, mode: str = 'bilinear', antialias: bool = True) -> None:
        if mode not in _MODES:
            raise ValueError(f'FPRMosaic: mode must be one of {_MODES}, got {mode!r}')
        self.mode, self.antialias = mode, bool(antialias)

    def __repr__(self) -> str:
        return f'FPRMosaic(mode={self.mode!r}, antialias={self.antialias})'

    def _resize(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        if self.mode in ('bilinear', 'bicubic'):
            return F.interpolate(x, size=size, mode=self.mode, align_corners=False, antialias=self.antialias)
        return F.interpolate(x, size=size, mode=self.mode)

    def __call__(self, batch_inputs: torch.Tensor, batch_score: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(inputs (N, C, H, W), scores (N, K))`` -> the same with the last ``N - N // 2`` as mosaics."""
        if not isinstance(batch_inputs, torch.Tensor) or batch_inputs.dim() != 4:
            raise ValueError(f'FPRMosaic: batch_inputs must be an (N, C, H, W) tensor, got '
                             f'{getattr(batch_inputs, "shape", type(batch_inputs).__name__)}')
        if not isinstance(batch_score, torch.Tensor) or batch_score.dim() != 2 \
                or batch_score.shape[0] != batch_inputs.shape[0]:
            raise ValueError(f'FPRMosaic: batch_score must be the (N, num_classes) scores of the '
                             f'{batch_inputs.shape[0]} inputs, got '
                             f'{getattr(batch_score, "shape", type(batch_score).__name__)}')
        n, _, h, w = batch_inputs.shape
        if h < 2 or w < 2:
            raise ValueError(f'FPRMosaic: images must be at least 2x2 to hold four quadrants, got {h}x{w}')
        inputs = batch_inputs if batch_inputs.is_floating_point() else batch_inputs.float()
        scores = batch_score if batch_score.is_floating_point() else batch_score.float()
        first = n // 2
        m = n - first
        if m == 0:
            return inputs, scores
        out, out_scores = inputs.clone(), scores.clone()
        h0, w0 = h // 2, w // 2
        target = torch.zeros_like(scores[first:])
        for r0, r1, c0, c1 in ((0, h0, 0, w0), (0, h0, w0, w), (h0, h, 0, w0), (h0, h, w0, w)):
            idx = torch.randperm(n)[:m].to(inputs.device)
            out[first:, :, r0:r1, c0:c1] = self._resize(inputs[idx], (r1 - r0, c1 - c0)).to(out.dtype)
            target += scores[idx]
        out_scores[first:] = target / 4
        return out, out_scores
