"""Pixel accuracy per set, right for one-channel (sigmoid) heads too."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmseg.registry import METRICS

from .arguments import check_metric_kwargs
from .prediction import read_prediction, set_name_of

__all__ = ['PixelAccuracyMetric']


@METRICS.register_module()
class PixelAccuracyMetric(BaseMetric):
    """Fraction of valid pixels whose top-label prediction equals the label, pooled per set.

    The prediction is read from ``seg_logits`` (:func:`.prediction.read_prediction`): ``argmax``
    of the softmax for C > 1 channels and, for a one-channel head (sigmoid probability ``p``),
    ``p > 0.5`` (``docs/metrics.md#pixel-accuracy``). mmseg's ``IoUMetric`` reads
    ``pred_sem_seg``, which a one-channel head thresholds at its ``threshold`` (0.3 by default),
    so its ``aAcc`` is not this accuracy there. This is the accuracy ASLP's
    :class:`~uqseg.seg.hooks.ASLPHook` reads as ``Acc_val`` (``docs/aslp.md#acc_val``).

    Per image only ``(correct, valid)`` counts are kept; mmengine's ``collect_results`` gathers
    them across ranks and drops the samples a distributed sampler repeats, so the result equals
    one process seeing every image once.

    Keys: ``<set>/PixelAcc`` for every set seen (NaN, with a warning, for a set without a valid
    pixel).

    Args:
        ignore_index: label value(s) of pixels left out (an int or a tuple, e.g. ``(255, 254)``).
    """

    default_prefix: Optional[str] = None

    def __init__(self, ignore_index=255, collect_device: str = 'cpu', prefix: Optional[str] = None,
                 **kwargs) -> None:
        check_metric_kwargs(type(self), kwargs)
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        self.ignore_index = ignore_index

    @staticmethod
    def image_counts(pred) -> tuple[int, int]:
        """``(correct, valid)`` pixel counts of one :class:`.prediction.DensePrediction`."""
        correct = pred.top_label()[1].bool()  # a count of bools is exact (a float32 sum is not past 2**24)
        if pred.mask is not None:
            correct &= pred.mask
        return int(correct.sum()), pred.num_valid

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = read_prediction(sample, self.ignore_index)
            self.results.append((set_name_of(sample), *self.image_counts(pred)))

    @staticmethod
    def calculate(results: Sequence[tuple[str, int, int]]) -> dict[str, float]:
        """``{set: accuracy}`` from ``(set, correct, valid)`` rows (NaN for a set without pixels)."""
        sums: dict[str, list[int]] = OrderedDict()
        for name, correct, valid in results:
            c = sums.setdefault(name, [0, 0])
            c[0] += correct
            c[1] += valid
        return {name: (c / n if n else float('nan')) for name, (c, n) in sums.items()}

    def compute_metrics(self, results: list) -> dict[str, float]:
        acc = self.calculate(results)
        for name, value in acc.items():
            if value != value:
                MMLogger.get_current_instance().warning(
                    f'PixelAccuracyMetric: set {name!r} has no valid pixel; its accuracy is NaN')
        return {f'{name}/PixelAcc': value for name, value in acc.items()}
