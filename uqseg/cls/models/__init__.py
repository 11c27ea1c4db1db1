"""mmpretrain models of the classification front end: backbones, heads, losses, batch augments,
classifiers (each registers in mmpretrain's registries when imported)."""
from . import backbones, classifiers, fpr_mosaic, heads, losses
from .classifiers import (
    EnsembleClassifier,
    EnsembleClsTTA,
    LDLImageClassifier,
    MCDropoutImageClassifier,
    TemperatureScaledImageClassifier,
)
from .fpr_mosaic import FPRMosaic
from .heads import OutputLayerClsHead

__all__ = ['backbones', 'classifiers', 'fpr_mosaic', 'heads', 'losses', 'EnsembleClassifier', 'EnsembleClsTTA',
           'LDLImageClassifier', 'MCDropoutImageClassifier', 'TemperatureScaledImageClassifier', 'FPRMosaic',
           'OutputLayerClsHead']
