from .ensemble_classifier import EnsembleClassifier
from .ensemble_cls_tta import EnsembleClsTTA
from .ldl_image_classifier import LDLImageClassifier
from .mc_dropout_image_classifier import MCDropoutImageClassifier
from .member_outputs import member_predictions
from .temperature_scaled_image_classifier import TemperatureScaledImageClassifier, check_temperature_scalable

__all__ = ['EnsembleClassifier', 'EnsembleClsTTA', 'LDLImageClassifier', 'MCDropoutImageClassifier',
           'member_predictions', 'TemperatureScaledImageClassifier', 'check_temperature_scalable']
