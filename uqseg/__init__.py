"""uqseg: uncertainty estimation and calibration for dense prediction (MMSegmentation 1.x plugin).

Layers (``docs/architecture.md``):

* :mod:`uqseg.core`: plain torch + numpy math (metrics, binning, accumulators, losses, scores);
* :mod:`uqseg.seg`: the mmseg front end (datasets, heads, losses, metrics, hooks, pictures);
* :mod:`uqseg.cls`: the image classification front end on mmpretrain (next);
* :mod:`uqseg.compat`: the compatibility fixes for the pinned stack.

``import uqseg`` (or ``custom_imports = dict(imports=['uqseg'])`` in an mmseg config) applies the
fixes of :mod:`uqseg.compat` and registers every component of the mmseg front end in mmseg's
registries (DATASETS, TRANSFORMS, MODELS, METRICS, HOOKS). Both need mmengine / mmseg, which
uqseg's install brings; where they are absent (a torch-only use of :mod:`uqseg.core`) the
package imports without them and registers nothing.
"""
import importlib.util

__version__ = '0.1.0'


def _installed(name: str) -> bool:
    """Whether the package ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a sys.modules entry without a spec (blocked)
        return False


from . import core  # noqa: E402

__all__ = ['core']
if _installed('mmengine') and _installed('mmseg'):
    # compat first (checkpoint loading on torch >= 2.6), then the front end, which registers
    from . import compat, seg  # noqa: E402, I001
    __all__ += ['compat', 'seg']
