"""Pooled pixel-level calibration error of a segmentation model, per test set."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmseg.registry import METRICS

from ..binning import bin_sums, errors_from_bin_sums
from ._dense import probabilities_and_labels, set_name_of


@METRICS.register_module()
class PixelCalibrationMetric(BaseMetric):
    """ECE, MCE, RMSCE and OE over every valid pixel of each test set ("pooled").

    Confidence of a pixel:

    * ``'top-label'`` (default): ``max_c p_c``, correct if ``argmax_c p_c`` is the label. For a
      binary head (one output channel, sigmoid) this is ``max(p, 1 - p)`` with the prediction
      ``p > 0.5``, the convention of the ASLP paper.
    * ``'positive'`` (binary only): ``p`` of the foreground, scored against the label itself
      (torchmetrics' ``BinaryCalibrationError`` convention).

    Bins are equal-width, ``(k/n, (k+1)/n]`` (see :mod:`uqseg.evaluation.binning`), and each
    image contributes only its per-bin sums (count, confidence, correctness): memory grows with
    the number of images, not pixels, and the per-image entries are gathered across ranks by
    :meth:`BaseMetric.evaluate`, which also drops the samples a distributed sampler repeats.

    ECE = sum_k (n_k/N)|conf_k - acc_k| (Naeini et al., 2015; Guo et al., 2017);
    OE = sum_k (n_k/N) conf_k max(conf_k - acc_k, 0) (Thulasidasan et al., 2019; ASLP, Liu et al. 2023).

    Keys: ``<set>/ECE``, ``<set>/MCE``, ``<set>/RMSCE``, ``<set>/OE`` for every set seen
    (``set_name`` in the sample's metainfo), values as fractions.
    """

    default_prefix: Optional[str] = None

    def __init__(self, n_bins: int = 10, confidence: str = 'top-label', ignore_index: int = 255,
                 collect_device: str = 'cpu', prefix: Optional[str] = None, **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        if confidence not in ('top-label', 'positive'):
            raise ValueError(f"confidence must be 'top-label' or 'positive', got {confidence!r}")
        if n_bins < 1:
            raise ValueError(f'n_bins must be >= 1, got {n_bins}')
        self.n_bins = n_bins
        self.confidence = confidence
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            probs, label, valid = probabilities_and_labels(sample, self.ignore_index)
            if self.confidence == 'positive':
                if probs.shape[0] != 2:
                    raise ValueError("confidence='positive' needs a binary prediction, got "
                                     f'{probs.shape[0]} classes ({sample.get("img_path")})')
                conf, hit = probs[1][valid], label[valid].to(probs.dtype)
            else:
                top, pred = probs.max(dim=0)
                conf, hit = top[valid], (pred == label)[valid]
            self.results.append((set_name_of(sample), bin_sums(conf, hit, self.n_bins).cpu()))

    def compute_metrics(self, results: list) -> dict[str, float]:
        per_set: dict[str, torch.Tensor] = OrderedDict()
        for name, sums in results:
            per_set[name] = per_set[name] + sums if name in per_set else sums.clone()
        metrics = {}
        logger = MMLogger.get_current_instance()
        for name, sums in per_set.items():
            if sums[0].sum() == 0:
                logger.warning(f'PixelCalibrationMetric: set {name!r} has no valid pixel; its errors are NaN')
            for key, value in errors_from_bin_sums(sums).items():
                metrics[f'{name}/{key}'] = value
        return metrics
