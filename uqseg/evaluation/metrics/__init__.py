from .pixel_calibration_metric import PixelCalibrationMetric
from .sod_metric import SODMetric

__all__ = ['PixelCalibrationMetric', 'SODMetric']
