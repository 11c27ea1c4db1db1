"""Losses, heads and training rules (registered in mmseg's MODELS)."""
from . import aslp_rule, heads, losses  # noqa: F401
from .heads import ASLPHeadMixin, aslp_head_class, build_aslp_head
from .losses import SCBCELoss

__all__ = ['ASLPHeadMixin', 'SCBCELoss', 'aslp_head_class', 'aslp_rule', 'build_aslp_head', 'heads',
           'losses']
