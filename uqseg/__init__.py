"""uqseg: uncertainty estimation and calibration for dense prediction (MMSegmentation 1.x plugin).

``import uqseg`` (or ``custom_imports = dict(imports=['uqseg'])`` in an mmseg config) applies the
compatibility fixes of :mod:`uqseg.compat` and registers every uqseg component in mmseg's
registries (DATASETS, TRANSFORMS, MODELS, METRICS, HOOKS).
"""
__version__ = '0.1.0'

from . import compat  # noqa: F401,E402  (first: checkpoint loading on torch >= 2.6)
from . import datasets, evaluation, hooks, models  # noqa: F401,E402
