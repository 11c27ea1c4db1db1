"""uqseg: uncertainty estimation and calibration for dense prediction (MMSegmentation 1.x plugin).

Layers (``docs/architecture.md``):

* :mod:`uqseg.core`: plain torch + numpy math (metrics, binning, accumulators, losses, scores);
* :mod:`uqseg.engine`: what both front ends share on mmengine (the teacher and TEDL hooks);
* :mod:`uqseg.seg`: the mmseg front end (datasets, heads, losses, metrics, hooks, pictures);
* :mod:`uqseg.cls`: the image classification front end on mmpretrain (datasets, backbone, heads,
  losses, batch augments, classifiers, the selective-prediction metric);
* :mod:`uqseg.compat`: the compatibility fixes for the pinned stack (explicit calls, none at import).

``import uqseg`` (or ``custom_imports = dict(imports=['uqseg'])`` in an mmseg or mmpretrain config)
registers the shared hooks in mmengine's root ``HOOKS`` and ``SafeCheckpointRunner`` in its
``RUNNERS``, every component of the mmseg front end in mmseg's registries (DATASETS, TRANSFORMS, MODELS,
METRICS, HOOKS) and, with mmpretrain installed, every component of the classification front end in
mmpretrain's. They need mmengine / mmseg / mmpretrain, which uqseg's install brings; where they
are absent (a torch-only use of :mod:`uqseg.core`) the package imports without them and
registers nothing.
"""
__version__ = '0.1.0'

from . import core  # noqa: E402
from .optional import installed as _installed  # noqa: E402

__all__ = ['core']
if _installed('mmengine'):
    # the shared hooks (and safe checkpoint loading, uqseg.engine.checkpoint), then the front ends
    from . import compat, engine  # noqa: E402, I001
    __all__ += ['compat', 'engine']
    if _installed('mmseg'):
        from . import seg  # noqa: E402
        __all__ += ['seg']
    if _installed('mmpretrain'):
        from . import cls  # noqa: E402
        __all__ += ['cls']
