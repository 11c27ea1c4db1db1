"""Distances to learnable class prototypes: the IsoMax+ and DisMax logits.

Sources: D. Macedo, T. Ludermir, "Enhanced Isotropy Maximization Loss" (IsoMax+), 2021;
D. Macedo, C. Zanchettin, T. Ludermir, "Distinction Maximization Loss" (DisMax), 2022.
Conventions: ``docs/dismax.md``. Features ``f`` on the channel ``dim`` (``(N, D)`` or
``(N, D, H, W)``), prototypes ``P`` of shape ``(K, D)``, a learnable scale ``s``::

    d_j = |s| * || f/|f| - P_j/|P_j| ||_2 / sqrt(2)          (in [0, sqrt(2) |s|])
    IsoMax+ logits  L_j = -d_j          DisMax logits  L_j = -(d_j + mean_k d_k)

Both are <= 0. A feature vector of norm below :data:`NORM_EPS` (e.g. all zero after a ReLU)
normalises to zero with zero gradient (no NaN, and no 1 / eps gradient as ``F.normalize``
gives): its distance to every prototype is ``|s| / sqrt(2)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ['NORM_EPS', 'prototype_distances', 'isomax_plus_logits', 'dismax_logits']

Tensor = torch.Tensor

#: Feature norms at or below this count as zero when normalising.
NORM_EPS = 1e-6
_SQ_EPS = 1e-12  # squared distances are clamped here before the square root (finite gradient)


def prototype_distances(features: Tensor, prototypes: Tensor, scale: Tensor, dim: int = 1) -> Tensor:
    """``d_j`` of every feature vector to every prototype; ``dim`` of the output holds ``K``.

    Computed as ``sqrt(|f^|^2 + 1 - 2 f^.P^)`` from one matrix product (a 1x1 convolution for
    maps), as fast as the plain ``conv_seg`` it replaces; float32 rounding makes distances
    below ~3e-4 inexact (``torch.cdist`` without matrix products is exact but far slower). Always
    in float32 or float64, also under autocast (in float16 the rounding of ``x.P`` would zero
    distances below ~0.02).
    """
    if prototypes.dim() != 2 or features.dim() < 2 or features.shape[dim] != prototypes.shape[1]:
        raise ValueError(f'prototype_distances: features {tuple(features.shape)} need as many channels on dim {dim} '
                         f'as the prototypes {tuple(prototypes.shape)} (K, D) have columns')
    x = features.movedim(dim, 1) if dim != 1 else features
    with torch.autocast(device_type=x.device.type, enabled=False):  # sqrt(2 - 2 x.P) needs float32
        return _distances(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x,
                          prototypes.float() if prototypes.dtype in (torch.float16, torch.bfloat16) else prototypes,
                          scale.float(), dim)


def _distances(x: Tensor, prototypes: Tensor, scale: Tensor, dim: int) -> Tensor:
    norm = x.norm(dim=1, keepdim=True)
    nonzero = (norm > NORM_EPS).to(x.dtype)
    inv = nonzero / norm.clamp(min=NORM_EPS)  # 1 / |x|, and 0 (with no gradient) at zero vectors
    ph = F.normalize(prototypes, dim=1, eps=1e-12)
    if x.dim() == 4:  # x^.P^ = (x.P^) / |x|: scaling the K output channels, not the D input ones
        dot = F.conv2d(x, ph[:, :, None, None]) * inv
    else:
        dot = torch.einsum('nd...,kd->nk...', x, ph) * inv
    x_sq = nonzero  # |x^|^2: 1, or 0 for a zero vector
    p_sq = (ph * ph).sum(1).view((1, -1) + (1,) * (dot.dim() - 2))
    d = (x_sq + p_sq - 2 * dot).clamp(min=_SQ_EPS).sqrt() * (scale.abs() / math.sqrt(2.0))
    return d.movedim(1, dim) if dim != 1 else d


def isomax_plus_logits(distances: Tensor, dim: int = 1) -> Tensor:
    """IsoMax+ logits ``L_j = -d_j``."""
    return -distances


def dismax_logits(distances: Tensor, dim: int = 1) -> Tensor:
    """DisMax logits ``L_j = -(d_j + mean_k d_k)``."""
    return -(distances + distances.mean(dim, keepdim=True))
