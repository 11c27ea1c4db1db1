"""Segmentors: temperature scaling and label distribution learning on mmseg's ``EncoderDecoder``,
and the TTA model whose ``seg_logits`` is the merged distribution (registered in mmseg's MODELS)."""
from .ldl_encoder_decoder import LDLEncoderDecoder
from .mean_probability_tta_model import MeanProbabilitySegTTAModel
from .temperature_scaled_encoder_decoder import (
                                                 TEMPERATURE_KEY,
                                                 TemperatureScaledEncoderDecoder,
                                                 check_temperature_scalable,
)

__all__ = ['TemperatureScaledEncoderDecoder', 'LDLEncoderDecoder', 'MeanProbabilitySegTTAModel', 'TEMPERATURE_KEY',
           'check_temperature_scalable']
