"""Heads and losses of the mmseg front end (registered in mmseg's MODELS)."""
from . import heads, losses
from .heads import ASLPHead, DecodeHeadWrapper, OutputLayerHead
from .losses import DisMaxLoss, EDLLoss, SCBCELoss

__all__ = ['ASLPHead', 'DecodeHeadWrapper', 'OutputLayerHead', 'SCBCELoss', 'EDLLoss', 'DisMaxLoss', 'heads',
           'losses']
