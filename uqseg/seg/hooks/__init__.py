from .aslp_hook import ASLPHook
from .check_finite_loss_hook import CheckFiniteLossHook
from .checkpoint_teacher_hook import CheckpointTeacherHook
from .ema_teacher_hook import EMATeacherHook
from .resume_random_state_hook import ResumeRandomStateHook
from .save_prediction_maps_hook import SavePredictionMapsHook
from .tedl_hook import TEDLHook
from .uncertainty_map_hook import UncertaintyMapHook

__all__ = ['ASLPHook', 'CheckFiniteLossHook', 'CheckpointTeacherHook', 'EMATeacherHook', 'ResumeRandomStateHook',
           'SavePredictionMapsHook', 'TEDLHook', 'UncertaintyMapHook']
