"""uqseg's mmseg front end: datasets and transforms, heads, losses, metrics, hooks, pictures.

Importing it registers every component in mmseg's registries (DATASETS, TRANSFORMS, MODELS,
METRICS, HOOKS); ``import uqseg`` (``custom_imports = dict(imports=['uqseg'])``) does. The math
lives in :mod:`uqseg.core`; this layer reads mmseg's data samples and fits mmseg's interfaces.
"""
from . import datasets, hooks, metrics, models, visualization
from .datasets import ShapesDataset, SODDataset
from .hooks import (
                    ASLPHook,
                    CheckFiniteLossHook,
                    ResumeRandomStateHook,
                    SavePredictionMapsHook,
                    TEDLHook,
                    UncertaintyMapHook,
)
from .metrics import (
                    OODDetectionMetric,
                    PerSetIoUMetric,
                    PixelAccuracyMetric,
                    PixelCalibrationMetric,
                    PixelUncertaintyMetric,
                    SODMetric,
)
from .models import ASLPHead, DisMaxLoss, EDLLoss, OutputLayerHead, SCBCELoss

__all__ = ['datasets', 'hooks', 'metrics', 'models', 'visualization', 'ASLPHead', 'OutputLayerHead', 'SCBCELoss',
           'EDLLoss', 'DisMaxLoss', 'ASLPHook', 'TEDLHook', 'CheckFiniteLossHook', 'ResumeRandomStateHook',
           'SavePredictionMapsHook', 'UncertaintyMapHook', 'OODDetectionMetric', 'PerSetIoUMetric',
           'PixelAccuracyMetric', 'PixelCalibrationMetric', 'PixelUncertaintyMetric', 'SODMetric', 'SODDataset',
           'ShapesDataset']
