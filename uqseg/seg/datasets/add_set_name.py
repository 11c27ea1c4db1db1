"""``AddSetName`` in mmseg's ``TRANSFORMS``: the set name of any mmseg dataset's samples, so that one test
loop (a ``ConcatDataset`` of a user's own ID and OOD splits of ``BaseSegDataset``) reports every
uqseg pixel metric per set (``<set>/<key>``, :func:`uqseg.seg.metrics.prediction.set_name_of`)::

    test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                     dict(type='PackSegInputs'), dict(type='AddSetName', set_name='ood')]

The transform is :class:`uqseg.engine.set_name.SetNameTransform` (shared with the mmpretrain front
end): after ``PackSegInputs`` it sets the packed sample's metainfo; before it, ``results['set_name']``,
which ``PackSegInputs(meta_keys=(..., 'set_name'))`` must then carry. ``docs/metrics.md#set-names``.
"""
from __future__ import annotations

from mmseg.registry import TRANSFORMS

from ...engine.set_name import SetNameTransform

__all__ = ['AddSetName']


@TRANSFORMS.register_module()
class AddSetName(SetNameTransform):
    """Tag every sample with ``set_name`` (see the module docstring)."""
