"""Segmentors: temperature scaling and label distribution learning on mmseg's ``EncoderDecoder``,
the TTA model whose ``seg_logits`` is the merged distribution, and the models of several members
(deep ensembles, MC dropout; registered in mmseg's MODELS)."""
from .ensemble_segmentor import EnsembleSegmentor, member_specs
from .ldl_encoder_decoder import LDLEncoderDecoder
from .mc_dropout_encoder_decoder import MCDropoutEncoderDecoder, dropout_modules
from .mean_probability_tta_model import MeanProbabilitySegTTAModel
from .member_samples import write_members
from .temperature_scaled_encoder_decoder import (
                                                 TEMPERATURE_KEY,
                                                 TemperatureScaledEncoderDecoder,
                                                 check_temperature_scalable,
)

__all__ = ['TemperatureScaledEncoderDecoder', 'LDLEncoderDecoder', 'MeanProbabilitySegTTAModel', 'TEMPERATURE_KEY',
           'check_temperature_scalable', 'EnsembleSegmentor', 'member_specs', 'MCDropoutEncoderDecoder',
           'dropout_modules', 'write_members']
