from . import accumulators, binning, functional
from .metrics import PixelCalibrationMetric, SODMetric

__all__ = ['accumulators', 'binning', 'functional', 'PixelCalibrationMetric', 'SODMetric']
