"""The core's losses, registered once in mmseg's MODELS (they follow mmseg's loss interface:
``forward(cls_score, label, weight=None, ignore_index=255)`` and a ``loss_name``)."""
from mmseg.registry import MODELS

from ....core.sc_bce import SCBCELoss

MODELS.register_module(module=SCBCELoss)

__all__ = ['SCBCELoss']
