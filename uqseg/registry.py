"""uqseg's own registry: the output layers, shared by the mmseg front end (a decode head's
``conv_seg``) and the classification front end (a head's last layer).

``build_output_layer(dict(type='EDLLayer', evidence='elu', in_channels=..., num_classes=...))``;
the layers themselves are the torch-only :mod:`uqseg.core.output_layers`.
"""
from mmengine.registry import Registry

from .core.output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer

__all__ = ['OUTPUT_LAYERS', 'build_output_layer']

OUTPUT_LAYERS = Registry('output layer', scope='uqseg')
for _layer in (EDLLayer, DisMaxLayer, IsoMaxPlusLayer):
    OUTPUT_LAYERS.register_module(module=_layer)


def build_output_layer(cfg: dict):
    """Build ``cfg`` (``dict(type=<registered name or class>, **args)``) from :data:`OUTPUT_LAYERS`.

    By name lookup rather than ``Registry.build``, whose scope switch would warn that mmseg's
    default scope is not in this registry's tree."""
    args = dict(cfg)
    kind = args.pop('type')
    cls = OUTPUT_LAYERS.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        raise KeyError(f'output_layer type {kind!r} is not registered; registered: {sorted(OUTPUT_LAYERS.module_dict)}')
    return cls(**args)
