"""``LDLStudent``: the teacher slot of a model trained on a teacher's soft labels (mmseg's
``LDLEncoderDecoder``, mmpretrain's ``LDLImageClassifier``), the contract of
:class:`~uqseg.engine.hooks.EMATeacherHook` and :class:`~uqseg.engine.hooks.CheckpointTeacherHook`.

The teacher is kept outside the module tree (``__dict__``, not a submodule), so it is in no
state dict, optimizer or DDP wrapper; a deep copy of the student would copy it too, so the hooks
unset it first. :meth:`LDLStudent.eval_teacher` returns it in eval mode, or says which hook to add.
"""
from __future__ import annotations

from typing import Optional

from torch import nn

__all__ = ['LDLStudent']


class LDLStudent:
    """Mixin for an ``nn.Module`` that trains on a teacher's outputs (see the module docstring)."""

    @property
    def teacher(self) -> Optional[nn.Module]:
        return self.__dict__.get('_teacher')

    def set_teacher(self, teacher: Optional[nn.Module]) -> None:
        """Use ``teacher`` (None: none); kept outside the module tree."""
        self.__dict__['_teacher'] = teacher

    def eval_teacher(self) -> nn.Module:
        """The teacher in eval mode; ``RuntimeError`` naming the hooks that set one if there is none."""
        teacher = self.teacher
        if teacher is None:
            raise RuntimeError(
                f"{type(self).__name__} has no teacher: add custom_hooks=[dict(type='EMATeacherHook')] (online LDL) "
                "or [dict(type='CheckpointTeacherHook', checkpoint=...)] (offline LDL) to the config")
        return teacher.train(False)
