"""Post-hoc temperature scaling (Guo et al., 2017) of any mmpretrain ``ImageClassifier``.

``TemperatureScaledImageClassifier`` is mmpretrain's ``ImageClassifier`` whose ``predict`` divides
the head's scores by ``T`` before the head's softmax, so ``pred_score`` and every metric read the
calibrated model; training (``loss``) and ``tensor`` mode (the raw scores, what
``uqseg dump-outputs`` writes) are untouched. One line in a config, for a known ``T``::

    model = dict(type='TemperatureScaledImageClassifier', temperature=1.7, backbone=..., head=...)

``T`` lives in :class:`~uqseg.core.temperature_buffer.TemperatureBuffer` (not saved by training;
``uqseg calibrate`` fits it on a held-out split and writes it into the checkpoint;
``temperature=None`` requires it from there). EDL heads (``log alpha`` outputs) are refused.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from ....core.temperature_buffer import TemperatureBuffer
from ....core.temperature_kinds import check_temperature_kind
from ...outputs import output_kind

__all__ = ['TemperatureScaledImageClassifier', 'check_temperature_scalable']


def check_temperature_scalable(classifier, owner: str) -> None:
    """Refuse, naming ``owner``, a classifier whose head's outputs temperature scaling does not
    apply to (EDL's ``log alpha``): the one rule, :func:`uqseg.core.temperature_kinds.check_temperature_kind`."""
    check_temperature_kind(output_kind(classifier), owner, f'the head {type(classifier.head).__name__} outputs')


@MODELS.register_module()
class TemperatureScaledImageClassifier(TemperatureBuffer, ImageClassifier):
    """``ImageClassifier`` whose predictions are ``softmax(scores / T)``; see the module docstring.

    Args:
        temperature: ``T > 0`` (a number, or one per class), or None to require it from a
            checkpoint. Default 1.
        **kwargs: ``ImageClassifier``'s arguments (the head must have ``num_classes``).
    """

    calibration_tool = 'uqseg calibrate'

    def __init__(self, *args, temperature: Union[float, Sequence[float], None] = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        num_classes = getattr(self.head, 'num_classes', None)
        if num_classes is None:
            raise ValueError(f'{name} needs a head with num_classes (e.g. LinearClsHead), got '
                             f'{type(self.head).__name__}')
        self.init_temperature(temperature, num_classes)
        check_temperature_scalable(self, name)

    def predict(self, inputs: torch.Tensor, data_samples: Optional[List] = None, **kwargs) -> List:
        check_temperature_scalable(self, type(self).__name__)  # a TEDL head may have turned evidential
        feats = self.extract_feat(inputs)
        scores = self.scale_logits(self.head(feats))
        return self.head._get_predictions(scores, data_samples)
