"""Which loss each output layer trains with, and the per-step state an ``EDLLoss`` takes from its
layer, shared by the front ends' output-layer heads (mmseg's ``OutputLayerHead``, mmpretrain's
``OutputLayerClsHead``).

* :data:`LAYER_LOSSES`: an ``EDLLayer`` trains with ``EDLLoss``, a ``PrototypeDistanceLayer``
  (DisMax, IsoMax+) with ``DisMaxLoss``, and neither loss goes with the other layer;
* :func:`prepare_edl_losses`: before every loss, each ``EDLLoss`` gets the iteration (its KL
  annealing) and the layer's stage (``evidential``: False in TEDL's cross-entropy stage 1), with
  one warning when a layer sits in stage 1 without a schedule (no ``TEDLHook``).
"""
from __future__ import annotations

import warnings
from typing import Iterable

from torch import nn

from .dismax_loss import DisMaxLoss
from .edl_loss import EDLLoss
from .output_layers import EDLLayer, PrototypeDistanceLayer

__all__ = ['LAYER_LOSSES', 'prepare_edl_losses']

#: each layer family and the loss it trains with
LAYER_LOSSES = ((EDLLayer, EDLLoss), (PrototypeDistanceLayer, DisMaxLoss))


def prepare_edl_losses(layer: nn.Module, losses: Iterable[nn.Module], step: int, training: bool, warned: bool,
                       owner: str) -> bool:
    """Set ``step`` and ``evidential`` (the layer's ``output_kind`` is ``log_alpha``) on every
    ``EDLLoss`` of ``losses``; warn once (``warned`` in, the new flag out) when ``training`` a layer
    in its cross-entropy stage that no TEDL schedule will switch."""
    losses = [m for m in losses if isinstance(m, EDLLoss)]
    if not losses:
        return warned
    evidential = layer.output_kind == 'log_alpha'
    if not evidential and training and not getattr(layer, 'stage_scheduled', False) and not warned:
        warned = True
        warnings.warn(f'{owner}: the EDLLayer is in its cross-entropy stage (TEDL stage 1: '
                      "evidential=False, e.g. from a stage-1 checkpoint) and no TEDLHook switches it: training "
                      "trains plain cross-entropy. Add dict(type='TEDLHook', switch_iter=...) to custom_hooks, or "
                      'build the layer with evidential=True and load a checkpoint of another stage.')
    for m in losses:
        m.step = step
        m.evidential = evidential
    return warned
