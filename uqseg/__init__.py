"""uqseg: uncertainty estimation and calibration for dense prediction (MMSegmentation 1.x plugin).

Layers (``docs/architecture.md``):

* :mod:`uqseg.core`: plain torch + numpy math (metrics, binning, accumulators, losses, scores);
* :mod:`uqseg.seg`: the mmseg front end (datasets, heads, losses, metrics, hooks, pictures);
* :mod:`uqseg.cls`: the image classification front end on mmpretrain (next);
* :mod:`uqseg.compat`: the compatibility fixes for the pinned stack.

``import uqseg`` (or ``custom_imports = dict(imports=['uqseg'])`` in an mmseg config) applies the
fixes of :mod:`uqseg.compat` and registers every component of the mmseg front end in mmseg's
registries (DATASETS, TRANSFORMS, MODELS, METRICS, HOOKS).
"""
__version__ = '0.1.0'

from . import (  # noqa: F401  (seg registers the mmseg components)
    compat,  # noqa: F401  (first: checkpoint loading on torch >= 2.6)
    core,
    seg,
)

__all__ = ['compat', 'core', 'seg']
