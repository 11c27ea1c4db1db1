"""Heads and losses of the mmseg front end (registered in mmseg's MODELS)."""
from . import heads, losses
from .heads import ASLPHead, DecodeHeadWrapper
from .losses import SCBCELoss

__all__ = ['ASLPHead', 'DecodeHeadWrapper', 'SCBCELoss', 'heads', 'losses']
