from .check_finite_loss_hook import CheckFiniteLossHook
from .checkpoint_teacher_hook import CheckpointTeacherHook
from .ema_teacher_hook import TEACHER_STATE_KEY, EMATeacherHook, check_ldl_student
from .resume_random_state_hook import ResumeRandomStateHook
from .tedl_hook import TEDLHook

__all__ = ['CheckFiniteLossHook', 'CheckpointTeacherHook', 'EMATeacherHook', 'ResumeRandomStateHook', 'TEDLHook',
           'TEACHER_STATE_KEY', 'check_ldl_student']
