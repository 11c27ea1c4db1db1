from . import accumulators, binning, functional
from .metrics import OODDetectionMetric, PixelCalibrationMetric, PixelUncertaintyMetric, SODMetric

__all__ = ['accumulators', 'binning', 'functional', 'PixelCalibrationMetric', 'PixelUncertaintyMetric',
           'OODDetectionMetric', 'SODMetric']
