"""Registered mmseg metrics: thin readers (:mod:`.prediction`) over the core's accumulators."""
from .ood_metric import OODDetectionMetric
from .per_set_iou_metric import PerSetIoUMetric
from .pixel_accuracy_metric import PixelAccuracyMetric
from .pixel_calibration_metric import PixelCalibrationMetric
from .pixel_uncertainty_metric import PixelUncertaintyMetric
from .sod_metric import SODMetric

__all__ = ['PixelAccuracyMetric', 'PixelCalibrationMetric', 'PixelUncertaintyMetric', 'OODDetectionMetric',
           'SODMetric', 'PerSetIoUMetric']
