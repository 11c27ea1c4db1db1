"""uqseg's image classification front end on mmpretrain.

Importing it registers, in mmpretrain's registries, thin wrappers over the same core math the
mmseg front end uses (:mod:`uqseg.core`: output layers, losses, temperature fitting,
selective-prediction metrics), applied per image instead of per pixel. It imports
:mod:`uqseg.core`, :mod:`uqseg.engine` and mmpretrain, never :mod:`uqseg.seg`
(``tests/test_layering.py``). See ``docs/architecture.md`` and ``docs/classification.md``.
"""
from uqseg.optional import require

require('mmpretrain', 'uqseg.cls (the classification front end)')

from . import datasets, metrics, models, transforms  # noqa: E402
from .models import (  # noqa: E402
    EnsembleClassifier,
    EnsembleClsTTA,
    LDLImageClassifier,
    MCDropoutImageClassifier,
    TemperatureScaledImageClassifier,
)

__all__ = ['datasets', 'metrics', 'models', 'transforms', 'EnsembleClassifier', 'EnsembleClsTTA', 'LDLImageClassifier',
           'MCDropoutImageClassifier', 'TemperatureScaledImageClassifier']
