"""Losses, heads and training rules (registered in mmseg's MODELS)."""
from . import aslp_rule, losses  # noqa: F401
from .losses import SCBCELoss

__all__ = ['SCBCELoss', 'aslp_rule', 'losses']
