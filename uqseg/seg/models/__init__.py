"""Segmentors, heads, losses, the data preprocessor and batch augments of the mmseg front end
(registered in mmseg's MODELS)."""
from . import heads, losses, segmentors
from .data_preprocessor import BatchAugmentSegDataPreProcessor
from .heads import ASLPHead, DecodeHeadWrapper, OutputLayerHead
from .losses import DisMaxLoss, EDLLoss, LDLLoss, SCBCELoss
from .seg_cutmix import SegCutMix
from .segmentors import LDLEncoderDecoder, MeanProbabilitySegTTAModel, TemperatureScaledEncoderDecoder

__all__ = ['ASLPHead', 'DecodeHeadWrapper', 'OutputLayerHead', 'SCBCELoss', 'EDLLoss', 'DisMaxLoss', 'LDLLoss',
           'BatchAugmentSegDataPreProcessor', 'SegCutMix', 'LDLEncoderDecoder', 'MeanProbabilitySegTTAModel',
           'TemperatureScaledEncoderDecoder', 'heads', 'losses', 'segmentors']
