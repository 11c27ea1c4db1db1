"""The offline LDL teacher: a trained model loaded from a checkpoint, frozen, handed to an
LDL student (an mmseg ``LDLEncoderDecoder`` or an mmpretrain ``LDLImageClassifier``).

The teacher is the student's architecture (a copy of it) or the model of another config
(``config=``), loaded from ``checkpoint`` with every key required, in eval mode with no gradient,
built at ``before_train`` (testing the student needs neither the teacher nor its file). It is
rebuilt from the file at every start, so checkpoints do not carry it. A calibrated teacher
checkpoint's temperature is not applied: the teacher's raw logits are used, and
``LDLLoss(teacher_temperature=...)`` is the softening knob. The file is loaded as the tools load
theirs (``uqseg.engine.checkpoint``: the allow-list, ``trust_checkpoint=True`` for a trusted file
holding other types; every key must fit).

    custom_hooks = [dict(type='CheckpointTeacherHook', checkpoint='work_dirs/ce_shapes_demo/iter_800.pth')]
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, MODELS

from ...core.temperature import TEMPERATURE_KEY
from ..checkpoint import load_checkpoint_strict
from .ema_teacher_hook import check_ldl_student

__all__ = ['CheckpointTeacherHook']


@HOOKS.register_module()
class CheckpointTeacherHook(Hook):
    """A frozen teacher from ``checkpoint`` (architecture: the student's, or ``config``'s model);
    ``trust_checkpoint``: load a file holding types outside the allow-list (a file you trust)."""

    priority = 'NORMAL'

    def __init__(self, checkpoint: str, config: Optional[str] = None, trust_checkpoint: bool = False):
        self.checkpoint, self.config, self.trust_checkpoint = checkpoint, config, trust_checkpoint
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
        hint = '' if self.config else '; give config= for a teacher of another architecture'
        # a calibrated teacher's T: not applied (module docstring)
        load_checkpoint_strict(teacher, self.checkpoint, ignore_keys=(TEMPERATURE_KEY,), trust=self.trust_checkpoint,
                               owner='CheckpointTeacherHook', what=f'the teacher {type(teacher).__name__}', hint=hint,
                               trust_option='trust_checkpoint=True', partial_option=None)
        teacher.requires_grad_(False).train(False)
        self.teacher = teacher
        student.set_teacher(teacher)
