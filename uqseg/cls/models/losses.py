"""The core's EDL, DisMax and LDL losses in mmpretrain's ``MODELS``, taking mmpretrain's call.

mmpretrain's ``ClsHead._get_loss`` calls ``loss(cls_score, target, avg_factor=N, **kwargs)`` with
``target`` the labels ``gt_label`` ``(N,)`` or, under batch augments (Mixup, CutMix,
:class:`~uqseg.cls.models.fpr_mosaic.FPRMosaic`), the stacked soft targets ``gt_score`` ``(N, K)``.
Each class here is the core loss (same arguments, math and ``loss_name``; the soft-target rules of
:mod:`uqseg.core.checks`: DisMax ``KL(q || softmax(E z))``, EDL ``y = q``, LDL
``(1 - w) q + w softmax(t / tau)``) with that interface:

* **no ignore index**: every label in ``0..K-1`` is a class (255 is one on ImageNet); a label
  outside raises :class:`~uqseg.core.checks.LabelRangeError` naming the loss and the sample (the
  core losses with ``ignore_index=None``, :func:`uqseg.core.checks.class_labels`); a label at or above
  the scores' width also says which ``num_classes`` to set (:mod:`.num_classes`);
* **reduction** as mmpretrain's ``weight_reduce_loss``: the per-sample losses (times an optional
  per-sample ``weight`` and ``loss_weight``) summed and divided by ``avg_factor`` (mmpretrain passes
  ``N``: the mean over the batch, the core's reduction), or by ``N`` without one;
  ``reduction_override`` ``'none'`` / ``'sum'`` / ``'mean'``;
* ``LDLLoss`` also takes ``teacher_logits=`` ``(N, K)`` (from the classifier, on the same
  augmented batch) and ``step=`` (the iteration of its warm-up, else :attr:`step` as set).

Any other keyword is a ``TypeError`` naming the loss.
"""
from __future__ import annotations

from typing import Optional

import torch
from mmpretrain.registry import MODELS

from ...core.checks import LabelRangeError
from ...core.dismax_loss import DisMaxLoss as _CoreDisMaxLoss
from ...core.edl_loss import EDLLoss as _CoreEDLLoss
from ...core.ldl_loss import LDLLoss as _CoreLDLLoss
from .num_classes import too_few_classes

__all__ = ['EDLLoss', 'DisMaxLoss', 'LDLLoss']

Tensor = torch.Tensor

_REDUCTIONS = (None, 'none', 'mean', 'sum')


class _ClassificationLoss:
    """mmpretrain's call on a core loss (the next class in the MRO); see the module docstring."""

    #: extra keywords the loss takes
    call_kwargs: tuple = ()

    def forward(self, cls_score: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None, reduction_override: Optional[str] = None, **kwargs) -> Tensor:
        owner = type(self).__name__
        unknown = sorted(set(kwargs) - set(self.call_kwargs))
        if unknown:
            hint = (' (classification has no ignore_index: every label 0..K-1 is a class)'
                    if 'ignore_index' in unknown else '')
            raise TypeError(f'{owner} got unexpected keyword argument(s) {unknown}{hint}; it takes weight, '
                            f'avg_factor, reduction_override' + ''.join(f', {k}' for k in self.call_kwargs))
        if reduction_override not in _REDUCTIONS:
            raise ValueError(f"{owner}: reduction_override must be 'none', 'mean' or 'sum', got {reduction_override!r}")
        if not isinstance(target, Tensor):
            raise TypeError(f'{owner}: target must be a tensor, got {type(target).__name__}')
        if target.is_floating_point() and target.dim() == 2 and cls_score.dim() == 2 and target.shape[1] != 1 \
                and target.shape[0] == cls_score.shape[0] and target.shape[1] != cls_score.shape[1]:
            raise ValueError(f'{owner}: the soft targets (gt_score: the one-hot targets of batch augments) have '
                             f'{target.shape[1]} classes, the scores {cls_score.shape[1]}: model.data_preprocessor '
                             f'num_classes={target.shape[1]} must equal the head\'s num_classes={cls_score.shape[1]}')
        try:
            losses = super().forward(cls_score, target, weight, ignore_index=None, reduction_override='none',
                                     **kwargs)
        except LabelRangeError as e:
            if isinstance(e.value, (int, float)) and e.value >= cls_score.shape[1]:  # too few classes, not a bad label
                raise LabelRangeError(f'{e}: {too_few_classes(cls_score.shape[1])}', e.sample, e.value) from None
            raise
        if reduction_override == 'none':
            return losses
        if reduction_override == 'sum':
            return losses.sum()
        if avg_factor is None:
            avg_factor = losses.numel()
        if not float(avg_factor) > 0:
            raise ValueError(f'{owner}: avg_factor must be > 0, got {avg_factor!r}')
        return losses.sum() / float(avg_factor)


@MODELS.register_module()
class EDLLoss(_ClassificationLoss, _CoreEDLLoss):
    """:class:`uqseg.core.edl_loss.EDLLoss` with mmpretrain's call (see the module docstring)."""


@MODELS.register_module()
class DisMaxLoss(_ClassificationLoss, _CoreDisMaxLoss):
    """:class:`uqseg.core.dismax_loss.DisMaxLoss` with mmpretrain's call (see the module docstring)."""


@MODELS.register_module()
class LDLLoss(_ClassificationLoss, _CoreLDLLoss):
    """:class:`uqseg.core.ldl_loss.LDLLoss` with mmpretrain's call; ``teacher_logits=`` and ``step=``
    as keywords (see the module docstring)."""

    call_kwargs = ('teacher_logits', 'step')

    def forward(self, cls_score: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None, reduction_override: Optional[str] = None,
                teacher_logits: Optional[Tensor] = None, step: Optional[int] = None, **kwargs) -> Tensor:
        if step is not None:
            self.step = int(step)
        return super().forward(cls_score, target, weight, avg_factor, reduction_override,
                               teacher_logits=teacher_logits, **kwargs)
