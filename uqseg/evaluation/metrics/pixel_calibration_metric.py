"""Pixel-level calibration of a segmentation model per test set: pooled and per-image."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmseg.registry import METRICS

from ..binning import errors_from_bin_sums
from ._pixels import DensePrediction, masked_bin_sums, read_prediction, set_name_of
from ._streaming import batched_errors, nanmean, plot_path, resolve_plot_dir

_ERRORS = ('ECE', 'MCE', 'RMSCE', 'OE')


def nll_brier_sums(pred: DensePrediction, eps: float = 1e-12) -> torch.Tensor:
    """``[sum NLL, sum Brier, count]`` (float64, prediction's device) over the valid pixels.

    NLL = -log max(p_y, eps). Brier: binary heads ``(p - y)^2`` with ``p`` the foreground
    probability (sklearn's ``brier_score_loss``, range [0, 1]); multi-class heads
    ``sum_c (p_c - [c = y])^2`` (range [0, 2]). As :class:`..accumulators.ScoreSumAccumulator`.
    """
    valid = pred.mask
    if pred.binary:
        p, y = pred.p, pred.label_float()  # y is 0/1 on valid pixels
        pt = torch.mul(y, p).add_((1 - y).mul_(1 - p))  # p or 1 - p, exactly (one term is 0)
        brier = (p - y).square_()
    else:
        lab = pred.label if valid is None else pred.label.masked_fill(~valid, 0)
        pt = pred.probs.gather(0, lab[None])[0]
        brier = pred.probs.square().sum(0).sub_(pt, alpha=2).add_(1)
    nll = pt.clamp(min=eps).log_().neg_()
    if valid is None:
        count = torch.tensor(float(nll.numel()), dtype=torch.float64, device=nll.device)
    else:
        nll.masked_fill_(~valid, 0)
        brier.masked_fill_(~valid, 0)
        count = valid.sum().to(torch.float64)
    return torch.stack([nll.sum(dtype=torch.float64), brier.sum(dtype=torch.float64), count])


@METRICS.register_module()
class PixelCalibrationMetric(BaseMetric):
    """Calibration errors over the valid pixels of each test set, pooled and per image.

    Confidence of a pixel:

    * ``'top-label'`` (default): ``max_c p_c``, correct if ``argmax_c p_c`` is the label. For a
      binary head (one output channel, sigmoid) this is ``max(p, 1 - p)`` with the prediction
      ``p > 0.5``, the convention of the ASLP paper.
    * ``'positive'`` (binary only): ``p`` of the foreground, scored against the label itself
      (torchmetrics' ``BinaryCalibrationError`` convention).

    ``seg_logits`` is read as mmseg leaves it: sigmoid probabilities for a one-channel head
    (``postprocess_result`` applies the sigmoid), logits (soft-maxed here) for C > 1.

    Bins are equal-width, ``(k/n, (k+1)/n]`` (see :mod:`uqseg.evaluation.binning`; torchmetrics
    uses ``[k/n, (k+1)/n)`` with 1.0 in an extra bin, so the two differ only for confidences on
    a bin edge). Per image only the per-bin sums (count, confidence, correctness) and the NLL /
    Brier sums are kept: 3 n_bins + 3 floats, computed on the prediction's device. The entries
    are gathered across ranks by :meth:`BaseMetric.evaluate`, which also drops the samples a
    distributed sampler repeats.

    ECE = sum_k (n_k/N)|conf_k - acc_k| (Naeini et al., 2015; Guo et al., 2017); MCE the largest
    gap of a non-empty bin; RMSCE = sqrt(sum_k (n_k/N) gap_k^2);
    OE = sum_k (n_k/N) conf_k max(conf_k - acc_k, 0) (Thulasidasan et al., 2019; ASLP).

    Keys, for every set seen (``set_name`` in the sample's metainfo), values as fractions:

    * ``<set>/ECE``, ``/MCE``, ``/RMSCE``, ``/OE``: pooled over every valid pixel of the set;
    * ``<set>/NLL``, ``/Brier`` (``nll_brier=True``): pooled means (see :func:`nll_brier_sums`);
    * ``<set>/ECE_img``, ``/MCE_img``, ``/RMSCE_img``, ``/OE_img`` (``per_image=True``): the mean
      over images of each image's own error (images without a valid pixel are skipped).

    A set without any valid pixel gives NaN for every key (and a warning).

    Args:
        n_bins: number of equal-width bins (10 in the SOD configs, as ASLP).
        confidence: ``'top-label'`` or ``'positive'``.
        ignore_index: label value of pixels excluded everywhere.
        per_image: also report the per-image means (off by default, so that the default keys stay
            the four pooled errors).
        nll_brier: also report the pooled NLL and Brier score (their sums are always kept; off by
            default for the same reason).
        nll_eps: probabilities are clamped to at least this value inside the NLL's log.
        plot: write a reliability diagram per set (PNG) into ``plot_dir`` or, if that is None,
            into ``<work_dir>/<timestamp>/uq_plots/`` of the current runner (found via
            ``MMLogger.get_current_instance()``; a metric does not see the runner). File name
            ``[<prefix>_]reliability_<set>.png``; overwritten at each evaluation.
        plot_dir: folder for the pictures (implies ``plot``).
    """

    default_prefix: Optional[str] = None

    def __init__(self, n_bins: int = 10, confidence: str = 'top-label', ignore_index: int = 255,
                 per_image: bool = False, nll_brier: bool = False, nll_eps: float = 1e-12, plot: bool = False,
                 plot_dir: Optional[str] = None, collect_device: str = 'cpu', prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        if confidence not in ('top-label', 'positive'):
            raise ValueError(f"confidence must be 'top-label' or 'positive', got {confidence!r}")
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f'n_bins must be >= 1, got {n_bins}')
        self.n_bins = n_bins
        self.confidence = confidence
        self.ignore_index = ignore_index
        self.per_image = per_image
        self.nll_brier = nll_brier
        self.nll_eps = nll_eps
        self.plot = plot
        self.plot_dir = plot_dir

    def image_sums(self, sample: dict) -> torch.Tensor:
        """One image's float64 sums on the prediction's device: the ``(3, n_bins)`` bin sums,
        flattened, followed (``nll_brier=True``) by ``[sum NLL, sum Brier, count]``."""
        pred = read_prediction(sample, self.ignore_index)
        if self.confidence == 'positive':
            if not pred.binary:
                raise ValueError("confidence='positive' needs a binary prediction, got "
                                 f'{pred.num_classes} classes ({pred.path})')
            conf, hit = pred.p, pred.label  # 0/1 on valid pixels
        else:
            conf, hit = pred.top_label()
        bins = masked_bin_sums(conf, hit, pred.mask, self.n_bins, hard=True)
        if not self.nll_brier:
            return bins.reshape(-1)
        return torch.cat([bins.reshape(-1), nll_brier_sums(pred, self.nll_eps)])

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            # a tuple of Python floats, not a small tensor: long-lived small tensors between the
            # large per-image temporaries fragment glibc's heap and make the RSS creep up
            self.results.append((set_name_of(sample), tuple(self.image_sums(sample).tolist())))

    def compute_metrics(self, results: list) -> dict[str, float]:
        per_set: dict[str, list] = OrderedDict()
        for name, sums in results:
            per_set.setdefault(name, []).append(sums)
        metrics = {}
        logger = MMLogger.get_current_instance()
        n = self.n_bins
        folder = resolve_plot_dir(self.plot, self.plot_dir, type(self).__name__)
        for name, rows in per_set.items():
            table = torch.tensor(rows, dtype=torch.float64)
            bins = table[:, :3 * n].reshape(-1, 3, n)
            pooled_bins = bins.sum(0)
            count = float(pooled_bins[0].sum())
            if pooled_bins[0].sum() == 0:
                logger.warning(f'PixelCalibrationMetric: set {name!r} has no valid pixel; its errors are NaN')
            pooled = errors_from_bin_sums(pooled_bins)
            for key in _ERRORS:
                metrics[f'{name}/{key}'] = pooled[key]
            if self.nll_brier:
                nll_sum, brier_sum, _ = table[:, 3 * n:].sum(0).tolist()
                metrics[f'{name}/NLL'] = nll_sum / count if count else math.nan
                metrics[f'{name}/Brier'] = brier_sum / count if count else math.nan
            if self.per_image:
                per_img = batched_errors(bins)
                for key in _ERRORS:
                    metrics[f'{name}/{key}_img'] = nanmean(per_img[key])
            if folder is not None:
                from uqseg.visualization import plot_reliability_diagram
                labels = (dict(xlabel='predicted foreground probability', ylabel='foreground frequency')
                          if self.confidence == 'positive' else {})
                plot_reliability_diagram(
                    pooled_bins, plot_path(folder, 'reliability', name, self.prefix),
                    title=f'{name}: {self.confidence} calibration, {n} bins, {int(count)} pixels',
                    metrics={k: pooled[k] for k in ('ECE', 'OE')}, **labels)
        return metrics
