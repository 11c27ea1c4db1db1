"""mmseg's ``SegDataPreProcessor`` with batch augments built from the config.

mmseg 1.2.2's ``SegDataPreProcessor`` takes ``batch_augments`` and calls it on every training
batch, but stores the argument as given, so a config's list of dicts is not callable. This
subclass builds each dict from mmseg's ``MODELS`` (e.g. :class:`~uqseg.seg.models.SegCutMix`) and
applies them in order, after normalisation and padding, to the stacked batch.
"""
from __future__ import annotations

from typing import Optional, Sequence

from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

__all__ = ['BatchAugmentSegDataPreProcessor']


class _Sequence:
    def __init__(self, augments):
        self.augments = list(augments)

    def __call__(self, inputs, data_samples):
        for augment in self.augments:
            inputs, data_samples = augment(inputs, data_samples)
        return inputs, data_samples

    def __repr__(self) -> str:
        return repr(self.augments)


@MODELS.register_module()
class BatchAugmentSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor(batch_augments=[dict(type=...), ...])``, the augments built."""

    def __init__(self, *args, batch_augments: Optional[Sequence] = None, **kwargs):
        augments = None
        if batch_augments:
            if isinstance(batch_augments, dict):
                batch_augments = [batch_augments]
            augments = _Sequence(a if callable(a) else MODELS.build(a) for a in batch_augments)
        super().__init__(*args, batch_augments=augments, **kwargs)
