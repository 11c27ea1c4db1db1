from .ldl_image_classifier import LDLImageClassifier
from .temperature_scaled_image_classifier import TemperatureScaledImageClassifier, check_temperature_scalable

__all__ = ['LDLImageClassifier', 'TemperatureScaledImageClassifier', 'check_temperature_scalable']
