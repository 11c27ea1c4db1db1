"""The EDL loss (Sensoy et al. 2018) with TEDL's cross-entropy stage (Li et al. 2022).

Inputs are an :class:`~uqseg.core.output_layers.EDLLayer`'s output: ``log alpha`` (``>= 0``)
while evidential, the plain logits ``f`` in TEDL's stage 1 (``evidential=False``, set by the
front end from the layer). Per valid pixel (or row)::

    evidential:  data_term(alpha, y) + lambda_t KL(Dir(y + (1 - y) alpha) || Dir(1)),
                 lambda_t = kl_weight * min(1, (t - kl_anneal_start) / kl_anneal_iters)
    stage 1:     cross-entropy of softmax(f)

averaged over valid pixels (``ignore_index`` excluded), times ``loss_weight``. Soft targets ``q`` of
the scores' shape (a classifier's batch augments: mixup, FPR mosaics; rows summing to 1) take the
place of the one-hot ``y`` in both terms (``alpha~ = q + (1 - q) alpha``, still ``>= 1``) and in
stage 1's cross-entropy ``-sum_k q_k log softmax(f)_k``; every row counts. The iteration ``t``
is :attr:`EDLLoss.step` (the mmseg front end sets it from mmengine's MessageHub before every
call, so it survives resume). Conventions: ``docs/edl.md``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .checks import class_targets, reject_unknown_kwargs
from .evidential import DATA_TERMS, edl_loss_map, kl_anneal
from .loss_reduction import check_channels, reduce_loss_map

__all__ = ['EDLLoss']

Tensor = torch.Tensor


class EDLLoss(nn.Module):
    """EDL loss on ``log alpha`` channels ``(N, K, H, W)`` or ``(N, K)``; see the module docstring.

    ``label``: class indices ``(N, ...)`` or soft targets of the scores' shape.

    Args:
        data_term: 'mse' (default, the paper's choice), 'log' or 'digamma'.
        kl_weight: the regulariser's weight once annealed (1 in the paper).
        kl_anneal_iters: ``T`` of the annealing ``min(1, t / T)``, in iterations (the paper
            anneals over 10 epochs: give the iterations of 10 epochs); 0 = no annealing.
        kl_anneal_start: iteration at which annealing starts (TEDL: the switch).
        loss_weight, loss_name, avg_non_ignore: as mmseg's losses (mean over valid pixels by
            default; False divides by all pixels).
    """

    def __init__(self, data_term: str = 'mse', kl_weight: float = 1.0, kl_anneal_iters: int = 1000,
                 kl_anneal_start: int = 0, loss_weight: float = 1.0, loss_name: str = 'loss_edl',
                 avg_non_ignore: bool = True, **unknown) -> None:
        super().__init__()
        reject_unknown_kwargs(type(self), unknown, hint=(
            "In an mmengine config these usually come from a base config's loss_decode (e.g. "
            "CrossEntropyLoss's use_sigmoid) merged into this dict: write "
            "loss_decode=dict(_delete_=True, type='EDLLoss', ...)."))
        if data_term not in DATA_TERMS:
            raise ValueError(f'EDLLoss: data_term must be one of {DATA_TERMS}, got {data_term!r}')
        if not float(kl_weight) >= 0:
            raise ValueError(f'EDLLoss: kl_weight must be >= 0, got {kl_weight!r}')
        if int(kl_anneal_iters) < 0 or int(kl_anneal_start) < 0:
            raise ValueError(f'EDLLoss: kl_anneal_iters and kl_anneal_start must be >= 0, got '
                             f'{kl_anneal_iters!r}, {kl_anneal_start!r}')
        self.data_term, self.kl_weight = data_term, float(kl_weight)
        self.kl_anneal_iters, self.kl_anneal_start = int(kl_anneal_iters), int(kl_anneal_start)
        self.loss_weight, self._loss_name, self.avg_non_ignore = float(loss_weight), loss_name, bool(avg_non_ignore)
        #: iteration t of the annealing (set by the front end before each call)
        self.step: int = 0
        #: False: cross-entropy on plain logits (TEDL stage 1; set from the layer by the front end)
        self.evidential: bool = True

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def kl_factor(self, step: Optional[int] = None) -> float:
        """``lambda_t`` at iteration ``step`` (default :attr:`step`)."""
        t = self.step if step is None else step
        return self.kl_weight * kl_anneal(t - self.kl_anneal_start, self.kl_anneal_iters)

    def extra_repr(self) -> str:
        return (f'data_term={self.data_term!r}, kl_weight={self.kl_weight}, kl_anneal_iters={self.kl_anneal_iters}, '
                f'kl_anneal_start={self.kl_anneal_start}, loss_weight={self.loss_weight}')

    def forward(self, cls_score: Tensor, label: Tensor, weight: Optional[Tensor] = None,
                ignore_index: int = 255, **kwargs) -> Tensor:
        z, lo, hi = check_channels(cls_score, 'EDLLoss', hint=(
            "an exp-evidence overflow or a diverged model; lower exp_clamp of the EDLLayer or use evidence='softplus'"))
        k = z.shape[1]
        y, valid, soft = class_targets(label, z.shape, k, ignore_index, 'EDLLoss')
        if self.evidential:
            if lo < 0:
                raise ValueError(
                    f'EDLLoss needs log-alpha channels (>= 0), the output of an EDLLayer, but got values down to '
                    f"{lo:.4g}: give the head output_layer=dict(type='EDLLayer') "
                    "(decode_head=dict(type='OutputLayerHead', head=dict(...), output_layer=...))")
            alpha = z.exp()
            onehot = y.to(alpha.dtype) if soft else F.one_hot(y, k).movedim(-1, 1).to(alpha.dtype)
            loss = edl_loss_map(alpha, onehot, self.data_term, self.kl_factor(), dim=1)
        else:
            loss = F.cross_entropy(z, y.to(z.dtype) if soft else y, reduction='none')
        return self.loss_weight * reduce_loss_map(loss, valid, weight, self.avg_non_ignore, 'EDLLoss',
                                                  kwargs.get('reduction_override'))
