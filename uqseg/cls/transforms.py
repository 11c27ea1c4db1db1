"""``AddSetName``: tag every sample of a dataset with the name of its set, for any dataset.

The selective-prediction metric tells in-distribution from out-of-distribution samples by the
``set_name`` a sample's metainfo carries (``SelectivePredictionMetric(ood_sets=...)``), which
``PackInputs(meta_keys=(..., 'set_name'))`` packs (or which ``AddSetName`` placed after
``PackInputs`` sets itself). uqseg's own datasets take ``set_name`` directly; this transform gives
one to a dataset that does not (mmpretrain's ``CIFAR100`` as the OOD set of a CIFAR-10 model)::

    dict(type='CIFAR100', data_root='data/cifar100', split='test',
         pipeline=[dict(type='AddSetName', set_name='cifar100'), dict(type='PackInputs', meta_keys=...)])

The set name itself is :class:`uqseg.engine.set_name.SetNameTransform` (shared with the mmseg front
end). **Unlabelled sets** (an OOD set read by ``CustomDataset(with_label=False)``): a sample without
``gt_label`` gets an empty one (zero labels, mmpretrain's multi-label form), so that it batches with
labelled samples in ``ClsDataPreprocessor`` (which reads ``gt_label`` of every sample once the
first of the batch has one, and one-hot encodes an empty label as a zero row). The OOD labels are
never used; an unlabelled sample outside the metric's ``ood_sets`` is an error there
(``docs/classification.md#the-selective-prediction-metric``).
"""
from __future__ import annotations

import numpy as np
import torch
from mmpretrain.registry import TRANSFORMS

from ..engine.set_name import SetNameTransform, packed_samples

__all__ = ['AddSetName', 'NO_LABEL']

#: The label of an unlabelled sample: no class (an empty label tensor).
NO_LABEL = np.empty(0, dtype=np.int64)


@TRANSFORMS.register_module()
class AddSetName(SetNameTransform):
    """Set ``results['set_name'] = set_name`` (after ``PackInputs``: the data sample's metainfo), and
    an empty ``gt_label`` where the sample has none (see the module docstring)."""

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        samples = packed_samples(results)
        if samples is None:
            if results.get('gt_label') is None:
                results['gt_label'] = NO_LABEL.copy()
        else:
            for sample in samples:
                if 'gt_label' not in sample:
                    sample.set_gt_label(torch.from_numpy(NO_LABEL.copy()))
        return results
