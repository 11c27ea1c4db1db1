"""Label distribution learning (Hong et al., 2023) for an mmpretrain ``ImageClassifier``: the
training target is a teacher's softmax on the same (augmented) input, mixed with the label.

``LDLImageClassifier`` is a :class:`TemperatureScaledImageClassifier` (so a calibrated LDL model
needs no other class) whose ``loss`` runs the teacher on the batch the data preprocessor made
(after Mixup / CutMix, whose mixed labels are the ``gt_score`` the head hands to the loss), in eval
mode without gradient, and passes its scores as ``teacher_logits`` to the head's ``LDLLoss``
(target ``(1 - w) q + w softmax(t / tau)``, :mod:`uqseg.core.ldl_loss`; ``w`` ramps up over
``warmup_iters`` of the MessageHub iteration). The teacher is kept outside the module tree (not in
the optimizer, DDP or the state dict); a hook sets it before training: ``EMATeacherHook`` (online:
the student's EMA) or ``CheckpointTeacherHook`` (offline: a trained model, frozen; without batch
augments this is knowledge distillation). The same hooks serve mmseg's ``LDLEncoderDecoder``.
Conventions: ``docs/ldl.md``, ``docs/classification.md``.

    model = dict(type='LDLImageClassifier', backbone=..., neck=...,
                 head=dict(type='LinearClsHead', num_classes=10, in_channels=...,
                           loss=dict(type='LDLLoss', teacher_weight=1.0)),
                 data_preprocessor=dict(num_classes=10, batch_augments=dict(augments=[
                     dict(type='Mixup', alpha=1.0), dict(type='CutMix', alpha=1.0)])))
    custom_hooks = [dict(type='EMATeacherHook', momentum=0.001)]
"""
from __future__ import annotations

from typing import List

import torch
from mmpretrain.registry import MODELS

from ....core.ldl_loss import LDLLoss
from ....engine.ldl_student import LDLStudent
from ....engine.runtime_info import current_iter
from .temperature_scaled_image_classifier import TemperatureScaledImageClassifier

__all__ = ['LDLImageClassifier']


@MODELS.register_module()
class LDLImageClassifier(LDLStudent, TemperatureScaledImageClassifier):
    """``ImageClassifier`` trained on a teacher's soft labels; see the module docstring. Its head's
    ``loss`` must be an ``LDLLoss``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(getattr(self.head, 'loss_module', None), LDLLoss):
            raise ValueError(f'LDLImageClassifier: the head {type(self.head).__name__} has no LDLLoss as its loss; '
                             "give it loss=dict(type='LDLLoss', ...)")
        self.set_teacher(None)

    @torch.no_grad()
    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's raw head scores on ``inputs`` (eval mode, no gradient)."""
        return self.eval_teacher()(inputs, mode='tensor')

    def loss(self, inputs: torch.Tensor, data_samples: List) -> dict:
        teacher = self.teacher_logits(inputs)
        self.head.loss_module.step = current_iter()
        feats = self.extract_feat(inputs)
        return self.head.loss(feats, data_samples, teacher_logits=teacher)
