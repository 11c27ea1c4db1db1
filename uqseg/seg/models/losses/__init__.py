"""The core's losses, registered once in mmseg's MODELS (they follow mmseg's loss interface:
``forward(cls_score, label, weight=None, ignore_index=255)`` and a ``loss_name``)."""
from mmseg.registry import MODELS

from ....core.dismax_loss import DisMaxLoss
from ....core.edl_loss import EDLLoss
from ....core.ldl_loss import LDLLoss
from ....core.sc_bce import SCBCELoss

for _loss in (SCBCELoss, EDLLoss, DisMaxLoss, LDLLoss):
    MODELS.register_module(module=_loss)

__all__ = ['SCBCELoss', 'EDLLoss', 'DisMaxLoss', 'LDLLoss']
