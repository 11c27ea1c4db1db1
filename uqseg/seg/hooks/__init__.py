"""The mmseg front end's hooks; the teacher and TEDL hooks, shared with mmpretrain, live in
:mod:`uqseg.engine.hooks` and are re-exported here."""
from ...engine.hooks import CheckpointTeacherHook, EMATeacherHook, TEDLHook
from .aslp_hook import ASLPHook
from .check_finite_loss_hook import CheckFiniteLossHook
from .resume_random_state_hook import ResumeRandomStateHook
from .save_prediction_maps_hook import SavePredictionMapsHook
from .uncertainty_map_hook import UncertaintyMapHook

__all__ = ['ASLPHook', 'CheckFiniteLossHook', 'CheckpointTeacherHook', 'EMATeacherHook', 'ResumeRandomStateHook',
           'SavePredictionMapsHook', 'TEDLHook', 'UncertaintyMapHook']
