from .checkpoint_teacher_hook import CheckpointTeacherHook
from .ema_teacher_hook import TEACHER_STATE_KEY, EMATeacherHook, check_ldl_student
from .tedl_hook import TEDLHook

__all__ = ['CheckpointTeacherHook', 'EMATeacherHook', 'TEDLHook', 'TEACHER_STATE_KEY', 'check_ldl_student']
