"""The offline LDL teacher: a trained model loaded from a checkpoint, frozen, handed to an
LDL student (an mmseg ``LDLEncoderDecoder`` or an mmpretrain ``LDLImageClassifier``).

The teacher is the student's architecture (a copy of it) or the model of another config
(``config=``), loaded from ``checkpoint`` with every key required, in eval mode with no gradient,
built at ``before_train`` (testing the student needs neither the teacher nor its file). It is
rebuilt from the file at every start, so checkpoints do not carry it. A calibrated teacher
checkpoint's temperature is not applied: the teacher's raw logits are used, and
``LDLLoss(teacher_temperature=...)`` is the softening knob.

    custom_hooks = [dict(type='CheckpointTeacherHook', checkpoint='work_dirs/ce_shapes_demo/iter_800.pth')]
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, MODELS
from mmengine.runner.checkpoint import _load_checkpoint

from ...core.temperature import TEMPERATURE_KEY
from .ema_teacher_hook import check_ldl_student

__all__ = ['CheckpointTeacherHook']


@HOOKS.register_module()
class CheckpointTeacherHook(Hook):
    """A frozen teacher from ``checkpoint`` (architecture: the student's, or ``config``'s model)."""

    priority = 'NORMAL'

    def __init__(self, checkpoint: str, config: Optional[str] = None):
        self.checkpoint, self.config = checkpoint, config
        self.teacher = None

    def before_train(self, runner) -> None:
        for what, path in (('checkpoint', self.checkpoint), ('config', self.config)):
            if path is not None and not osp.isfile(path):
                raise FileNotFoundError(f'CheckpointTeacherHook: the teacher {what} {path!r} does not exist')
        student = check_ldl_student(runner, type(self).__name__)
        student.set_teacher(None)
        if self.config is None:
            teacher = copy.deepcopy(student)
        else:
            teacher = MODELS.build(Config.fromfile(self.config).model)
        teacher = teacher.to(next(student.parameters()).device)
        state = _load_checkpoint(self.checkpoint, map_location='cpu')
        state = dict(state.get('state_dict', state))
        state.pop(TEMPERATURE_KEY, None)  # a calibrated teacher's T: not applied (module docstring)
        hint = '' if self.config else '; give config= for a teacher of another architecture'
        try:
            missing, unexpected = teacher.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise ValueError(f'CheckpointTeacherHook: {self.checkpoint} does not fit the teacher '
                             f'{type(teacher).__name__}: {str(exc).splitlines()[1].strip()}{hint}') from exc
        if missing or unexpected:
            raise ValueError(f'CheckpointTeacherHook: {self.checkpoint} does not fit the teacher '
                             f'{type(teacher).__name__}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}'
                             + hint)
        teacher.requires_grad_(False).train(False)
        self.teacher = teacher
        student.set_teacher(teacher)
