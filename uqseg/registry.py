"""uqseg's own registry: the output layers, shared by the mmseg front end (a decode head's
``conv_seg``) and the classification front end (a head's last layer).

``OUTPUT_LAYERS.build(dict(type='EDLLayer', evidence='elu', in_channels=..., num_classes=...))``;
the layers themselves are the torch-only :mod:`uqseg.core.output_layers`.
"""
from mmengine.registry import Registry

from .core.output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer

__all__ = ['OUTPUT_LAYERS']

OUTPUT_LAYERS = Registry('output layer', scope='uqseg')
for _layer in (EDLLayer, DisMaxLayer, IsoMaxPlusLayer):
    OUTPUT_LAYERS.register_module(module=_layer)
