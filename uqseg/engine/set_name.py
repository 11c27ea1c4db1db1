"""The set name of any dataset's samples: the transform both front ends register as ``AddSetName``.

uqseg's metrics group samples by the ``set_name`` of their metainfo (the mmseg pixel metrics report
``<set>/<key>`` per set, ``SelectivePredictionMetric`` tells its ``ood_sets`` apart by it). uqseg's
own datasets take ``set_name=``; :class:`SetNameTransform`, first in a dataset's pipeline, gives
one to the samples of any other dataset, and the packing step carries it into the metainfo when
``'set_name'`` is among its ``meta_keys`` (mmseg's ``PackSegInputs``, mmpretrain's ``PackInputs``)::

    dict(type='BaseSegDataset', ..., pipeline=[dict(type='AddSetName', set_name='ood'), ...,
                                               dict(type='PackSegInputs', meta_keys=(..., 'set_name'))])

Placed after the packing step instead, it sets the metainfo of the packed data sample(s) itself
(``results['data_samples']``, one or a list of mmengine ``BaseDataElement``), so no ``meta_keys``
can leave it out. It replaces a set name the dataset stored itself. The front ends register it in
their own ``TRANSFORMS`` (``uqseg.seg.datasets.AddSetName``, ``uqseg.cls.transforms.AddSetName``), so
it is found under mmseg's and mmpretrain's default scopes alike.
"""
from __future__ import annotations

from typing import Optional

from mmcv.transforms import BaseTransform

__all__ = ['SET_NAME_KEY', 'check_set_name', 'packed_samples', 'SetNameTransform']

#: The key of the set name in a pipeline's results and in a data sample's metainfo.
SET_NAME_KEY = 'set_name'


def check_set_name(set_name, owner: str) -> str:
    """Return ``set_name`` if it is a non-empty ``str``, else raise ``ValueError`` naming ``owner``."""
    if not isinstance(set_name, str) or not set_name:
        raise ValueError(f'{owner}: set_name must be a non-empty string, got {set_name!r}')
    return set_name


def packed_samples(results: dict) -> Optional[list]:
    """The data samples a packing step put in ``results['data_samples']`` (as a list; a test-time
    augmentation packs several), or None before packing."""
    packed = results.get('data_samples')
    if packed is None:
        return None
    return list(packed) if isinstance(packed, (list, tuple)) else [packed]


class SetNameTransform(BaseTransform):
    """Set ``results['set_name'] = set_name`` (see the module docstring)."""

    def __init__(self, set_name: str) -> None:
        self.set_name = check_set_name(set_name, type(self).__name__)

    def transform(self, results: dict) -> dict:
        samples = packed_samples(results)
        if samples is None:
            results[SET_NAME_KEY] = self.set_name
        else:
            for sample in samples:
                sample.set_metainfo({SET_NAME_KEY: self.set_name})
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(set_name={self.set_name!r})'
