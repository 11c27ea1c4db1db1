"""mmseg's IoUMetric per test set (``set_name``), with several ignored labels."""
from __future__ import annotations

from typing import Sequence

import torch
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

from .prediction import as_dict, ignored_labels, set_name_of

__all__ = ['PerSetIoUMetric']


@METRICS.register_module()
class PerSetIoUMetric(IoUMetric):
    """mmseg's :class:`IoUMetric` (same arguments, same math: ``intersect_and_union`` and
    ``total_area_to_metrics``, percentages) computed for every test set of a ``ConcatDataset``
    separately, keys ``<set>/aAcc``, ``<set>/mIoU``, ``<set>/mAcc`` (and the other ``metrics``).
    mmseg's own metric pools every set.

    ``ignore_index`` may list several labels, e.g. ``(255, 254)`` to leave the OOD pixels of the
    shapes demo out (mmseg's metric would count predictions on them as false positives).
    ``output_dir`` / ``format_only`` (writing predictions) are not taken: use mmseg's
    ``IoUMetric`` or ``uqseg test --out`` for that.
    """

    def __init__(self, ignore_index=255, **kwargs) -> None:
        for key in ('output_dir', 'format_only'):
            if kwargs.get(key):
                raise ValueError(f'PerSetIoUMetric does not write predictions ({key}={kwargs[key]!r}): use mmseg\'s '
                                 "IoUMetric(output_dir=...) or uqseg test --out DIR")
        self.ignored = ignored_labels(ignore_index)
        super().__init__(ignore_index=self.ignored[0], **kwargs)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            d = as_dict(sample)
            pred = d['pred_sem_seg']['data'].squeeze()
            label = d['gt_sem_seg']['data'].squeeze().to(pred)
            for v in self.ignored[1:]:
                label = torch.where(label == v, torch.full_like(label, self.ignored[0]), label)
            self.results.append((set_name_of(d), self.intersect_and_union(pred, label, num_classes, self.ignored[0])))

    def compute_metrics(self, results: list) -> dict[str, float]:
        names = list(dict.fromkeys(name for name, _ in results))
        out = {}
        for name in names:
            for key, value in super().compute_metrics([r for n, r in results if n == name]).items():
                out[f'{name}/{key}'] = value
        return out
