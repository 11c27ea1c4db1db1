"""The mmseg front end's hooks; the teacher, TEDL, finite-loss and random-state hooks, shared with mmpretrain, live in
:mod:`uqseg.engine.hooks` and are re-exported here."""
from ...engine.hooks import CheckFiniteLossHook, CheckpointTeacherHook, EMATeacherHook, ResumeRandomStateHook, TEDLHook
from .aslp_hook import ASLPHook
from .save_prediction_maps_hook import SavePredictionMapsHook
from .uncertainty_map_hook import UncertaintyMapHook

__all__ = ['ASLPHook', 'CheckFiniteLossHook', 'CheckpointTeacherHook', 'EMATeacherHook', 'ResumeRandomStateHook',
           'SavePredictionMapsHook', 'TEDLHook', 'UncertaintyMapHook']
