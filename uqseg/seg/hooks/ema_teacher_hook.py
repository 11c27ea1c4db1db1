"""The online LDL teacher: mmengine's ``ExponentialMovingAverage`` of the student, kept by an
``EMAHook``, handed to an :class:`~uqseg.seg.models.LDLEncoderDecoder`.

mmengine's ``EMAHook`` builds the averaged model before the run and updates it after every
training iteration (``teacher <- (1 - momentum) teacher + momentum student`` on the parameters;
buffers, e.g. BN statistics, copied from the student), which this hook inherits unchanged. It
differs where an LDL teacher must: validation and test evaluate the *student* (``EMAHook``
swaps the averaged weights in), and the checkpoint keeps the student in ``state_dict`` and the
teacher (its weights and update count) under ``ema_teacher_state_dict`` (``EMAHook`` swaps them),
restored on resume, so a resumed run continues bit for bit. A checkpoint loaded with
``load_from`` (or a resume from one without a teacher) starts the teacher as a copy of the
loaded weights, as ``EMAHook`` does.

    custom_hooks = [dict(type='EMATeacherHook', momentum=0.001)]
"""
from __future__ import annotations

import copy
import logging

from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.runner.checkpoint import load_state_dict
from mmseg.registry import HOOKS

from ..wrapped_model import unwrap_model

__all__ = ['EMATeacherHook', 'TEACHER_STATE_KEY', 'check_ldl_student']

#: the checkpoint key of the teacher's state
TEACHER_STATE_KEY = 'ema_teacher_state_dict'


def check_ldl_student(runner, owner: str):
    """The runner's segmentor, which must take a teacher (an ``LDLEncoderDecoder``)."""
    model = unwrap_model(runner.model)
    if not hasattr(model, 'set_teacher'):
        raise TypeError(f"{owner} needs model=dict(type='LDLEncoderDecoder', ...), which trains on a teacher's soft "
                        f'labels; the model is a {type(model).__name__}')
    return model


@HOOKS.register_module()
class EMATeacherHook(EMAHook):
    """``EMAHook`` whose averaged model is the student's LDL teacher; see the module docstring.

    Args:
        momentum: mmengine's EMA momentum, the weight of the student in each update (0.001: a
            decay of 0.999).
        begin_iter, begin_epoch: as ``EMAHook``: until then the teacher is a copy of the student.
        strict_load: as ``EMAHook``.
    """

    priority = 'NORMAL'

    def __init__(self, momentum: float = 0.001, begin_iter: int = 0, begin_epoch: int = 0,
                 strict_load: bool = True, **kwargs):
        if not 0.0 < float(momentum) <= 1.0:
            raise ValueError(f'EMATeacherHook: momentum must be in (0, 1], got {momentum!r}')
        super().__init__(ema_type='ExponentialMovingAverage', momentum=float(momentum), strict_load=strict_load,
                         begin_iter=begin_iter, begin_epoch=begin_epoch, update_buffers=False, **kwargs)

    def before_run(self, runner) -> None:
        student = check_ldl_student(runner, type(self).__name__)
        student.set_teacher(None)  # the copy below must not copy an earlier teacher
        super().before_run(runner)
        self.ema_model.module.train(False)
        student.set_teacher(self.ema_model.module)

    # the student is evaluated, not the teacher: none of EMAHook's swaps
    def before_val_epoch(self, runner) -> None:
        pass

    def after_val_epoch(self, runner, metrics=None) -> None:
        pass

    def before_test_epoch(self, runner) -> None:
        pass

    def after_test_epoch(self, runner, metrics=None) -> None:
        pass

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[TEACHER_STATE_KEY] = self.ema_model.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume and TEACHER_STATE_KEY in checkpoint:
            self.ema_model.load_state_dict(checkpoint[TEACHER_STATE_KEY], strict=self.strict_load)
            return
        if runner._resume:
            print_log(f'EMATeacherHook: the checkpoint has no {TEACHER_STATE_KEY!r}; the teacher starts as a copy of '
                      'its state_dict', 'current', logging.WARNING)
        load_state_dict(self.ema_model.module, copy.deepcopy(checkpoint['state_dict']), strict=False)
