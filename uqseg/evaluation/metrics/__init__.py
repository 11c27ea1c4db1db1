from .ood_metric import OODDetectionMetric
from .pixel_calibration_metric import PixelCalibrationMetric
from .pixel_uncertainty_metric import PixelUncertaintyMetric
from .sod_metric import SODMetric

__all__ = ['PixelCalibrationMetric', 'PixelUncertaintyMetric', 'OODDetectionMetric', 'SODMetric']
