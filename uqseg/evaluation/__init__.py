from . import binning
from .metrics import PixelCalibrationMetric, SODMetric

__all__ = ['binning', 'PixelCalibrationMetric', 'SODMetric']
