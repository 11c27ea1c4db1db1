"""``AddSetName``: tag every sample of a dataset with the name of its set, for any dataset.

The selective-prediction metric tells in-distribution from out-of-distribution samples by the
``set_name`` a sample's metainfo carries (``SelectivePredictionMetric(ood_sets=...)``), which
``PackInputs(meta_keys=(..., 'set_name'))`` packs. uqseg's own datasets take ``set_name``
directly; this transform gives one to a dataset that does not (mmpretrain's ``CIFAR100`` as the
OOD set of a CIFAR-10 model)::

    dict(type='CIFAR100', data_root='data/cifar100', split='test',
         pipeline=[dict(type='AddSetName', set_name='cifar100'), dict(type='PackInputs', meta_keys=...)])
"""
from __future__ import annotations

from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

__all__ = ['AddSetName']


@TRANSFORMS.register_module()
class AddSetName(BaseTransform):
    """Set ``results['set_name'] = set_name``."""

    def __init__(self, set_name: str) -> None:
        if not isinstance(set_name, str) or not set_name:
            raise ValueError(f'AddSetName: set_name must be a non-empty string, got {set_name!r}')
        self.set_name = set_name

    def transform(self, results: dict) -> dict:
        results['set_name'] = self.set_name
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(set_name={self.set_name!r})'
