"""The online LDL teacher: mmengine's ``ExponentialMovingAverage`` of the student, kept by an
``EMAHook``, handed to an LDL student (mmseg's :class:`~uqseg.seg.models.LDLEncoderDecoder`,
mmpretrain's :class:`~uqseg.cls.models.LDLImageClassifier`: a model with ``set_teacher``).

mmengine's ``EMAHook`` keeps the averaged model and updates it after every training iteration
(``teacher <- (1 - momentum) teacher + momentum student`` on the parameters; buffers, e.g. BN
statistics, copied from the student), which this hook inherits unchanged. It differs where an
LDL teacher must: the teacher is built at ``before_train`` (after the weights' initialisation and
``load_from``, so it starts as a copy of the initialised or loaded student; testing builds none),
validation and test evaluate the *student* (``EMAHook`` swaps the averaged weights in), and the
checkpoint keeps the student in ``state_dict`` and the teacher (its weights and update count)
under ``ema_teacher_state_dict`` (``EMAHook`` swaps them), restored on resume, so a resumed run
continues bit for bit. A resume from a checkpoint without a teacher starts it as a copy of the
resumed student.

    custom_hooks = [dict(type='EMATeacherHook', momentum=0.001)]
"""
from __future__ import annotations

import logging

from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS, MODELS

from ..wrapped_model import unwrap_model

__all__ = ['EMATeacherHook', 'TEACHER_STATE_KEY', 'check_ldl_student']

#: the checkpoint key of the teacher's state
TEACHER_STATE_KEY = 'ema_teacher_state_dict'


def check_ldl_student(runner, owner: str):
    """The runner's model, which must take a teacher (``set_teacher``: an ``LDLEncoderDecoder`` or an
    ``LDLImageClassifier``)."""
    model = unwrap_model(runner.model)
    if not hasattr(model, 'set_teacher'):
        raise TypeError(f"{owner} needs model=dict(type='LDLEncoderDecoder', ...) (mmseg) or "
                        "model=dict(type='LDLImageClassifier', ...) (mmpretrain), which train on a teacher's soft "
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
        if not 0.0 < float(momentum) < 1.0:
            raise ValueError(f'EMATeacherHook: momentum must be in (0, 1), got {momentum!r}')
        super().__init__(ema_type='ExponentialMovingAverage', momentum=float(momentum), strict_load=strict_load,
                         begin_iter=begin_iter, begin_epoch=begin_epoch, update_buffers=False, **kwargs)

    def before_run(self, runner) -> None:
        self.ema_model, self._resumed_state = None, None  # built at before_train: testing needs none

    def before_train(self, runner) -> None:
        student = check_ldl_student(runner, type(self).__name__)
        student.set_teacher(None)  # the copy below must not copy an earlier teacher
        self.src_model = student
        self.ema_model = MODELS.build(self.ema_cfg, default_args=dict(model=student))
        if self._resumed_state is not None:
            self.ema_model.load_state_dict(self._resumed_state, strict=self.strict_load)
            self._resumed_state = None
        self.ema_model.module.train(False)
        student.set_teacher(self.ema_model.module)
        super().before_train(runner)

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
        if self.ema_model is not None:
            checkpoint[TEACHER_STATE_KEY] = self.ema_model.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not runner._resume:
            return  # load_from: the teacher starts as a copy of the loaded student at before_train
        self._resumed_state = checkpoint.get(TEACHER_STATE_KEY)
        if self._resumed_state is None:
            print_log(f'EMATeacherHook: the checkpoint has no {TEACHER_STATE_KEY!r}; the teacher starts as a copy of '
                      'the resumed student', 'current', logging.WARNING)
