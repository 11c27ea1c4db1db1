"""Label distribution learning for segmentation: the student trains on its teacher's pixel soft
labels (Hong et al., 2023), computed on the same augmented batch.

``LDLEncoderDecoder`` is a :class:`TemperatureScaledEncoderDecoder` (so a calibrated checkpoint
of it tests as one) whose ``loss`` first runs the teacher (eval mode, ``torch.no_grad``) on the
batch the data preprocessor produced (after its batch augments, e.g. :class:`SegCutMix`),
resizes the teacher's logits to the label size as mmseg's ``loss_by_feat`` resizes the
student's, and hands them, with the iteration, to every :class:`~uqseg.core.ldl_loss.LDLLoss` of
the decode head for the call. Auxiliary heads keep their own losses.

The teacher is not a submodule (not in ``parameters()``, the optimizer, DDP or the student's
state dict); a hook sets it before training: :class:`~uqseg.seg.hooks.EMATeacherHook` (online:
mmengine's ``ExponentialMovingAverage`` of the student, in checkpoints under
``ema_teacher_state_dict``) or :class:`~uqseg.seg.hooks.CheckpointTeacherHook` (offline: a trained
model loaded from a checkpoint, frozen).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import nn

from ....core.ldl_loss import LDLLoss
from ....engine.ldl_student import LDLStudent
from ....engine.runtime_info import current_iter
from .temperature_scaled_encoder_decoder import TemperatureScaledEncoderDecoder

__all__ = ['LDLEncoderDecoder']


def _losses(head) -> list:
    losses = head.loss_decode if isinstance(head.loss_decode, nn.ModuleList) else [head.loss_decode]
    return [loss for loss in losses if isinstance(loss, LDLLoss)]


@MODELS.register_module()
class LDLEncoderDecoder(LDLStudent, TemperatureScaledEncoderDecoder):
    """``EncoderDecoder`` trained on a teacher's soft labels; see the module docstring.
    Its decode head must have an ``LDLLoss`` in ``loss_decode``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not _losses(self.decode_head):
            raise ValueError(f"LDLEncoderDecoder: the decode head {type(self.decode_head).__name__} has no LDLLoss in "
                             "loss_decode; give it loss_decode=dict(_delete_=True, type='LDLLoss', ...)")
        self.set_teacher(None)

    @torch.no_grad()
    def teacher_logits(self, inputs: torch.Tensor, size) -> torch.Tensor:
        """The teacher's decode-head logits on ``inputs`` (eval mode, no gradient), resized to ``size``."""
        logits = self.eval_teacher()._forward(inputs)
        return resize(logits, size=size, mode='bilinear', align_corners=self.decode_head.align_corners)

    @contextmanager
    def _teacher_for(self, losses, logits):
        step = current_iter()
        for loss in losses:
            loss.step, loss.teacher_logits = step, logits
        try:
            yield
        finally:
            for loss in losses:
                loss.teacher_logits = None

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        size = data_samples[0].gt_sem_seg.shape
        teacher = self.teacher_logits(inputs, size)
        x = self.extract_feat(inputs)
        losses = dict()
        with self._teacher_for(_losses(self.decode_head), teacher):
            losses.update(super()._decode_head_forward_train(x, data_samples))
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        return losses
