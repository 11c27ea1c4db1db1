"""Pixel-level calibration of a segmentation model per test set: pooled and per-image."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmseg.registry import METRICS

from ...core.accumulators import CalibrationAccumulator, ScoreSumAccumulator
from ...core.checks import check_n_bins
from ...core.functional import nanmean
from ...core.plots import plot_reliability_diagram
from .arguments import check_metric_kwargs
from .plot_files import plot_path, resolve_plot_dir
from .prediction import read_prediction, set_name_of

_ERRORS = ('ECE', 'MCE', 'RMSCE', 'OE')


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
    (``postprocess_result`` applies the sigmoid), logits (soft-maxed here) for C > 1
    (:func:`.prediction.read_prediction`).

    Every image feeds the core's :class:`~uqseg.core.accumulators.CalibrationAccumulator` (and
    :class:`~uqseg.core.accumulators.ScoreSumAccumulator`) over its valid pixels; per set the
    image states are summed, and the reliability diagram is drawn from the pooled accumulator.
    Bins are equal-width, ``(k/n, (k+1)/n]`` (``docs/metrics.md#binning``; torchmetrics
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
    * ``<set>/NLL``, ``/Brier`` (``nll_brier=True``): pooled means (NLL from the log-softmax of
      a softmax head's logits, exact; a binary head's sigmoid probabilities: -log max(p_y, eps),
      and ``<set>/NLL-clamped``, the pixels the clamp changed, when there are any;
      Brier (p - y)^2 for a binary head, sum_c (p_c - [c = y])^2 otherwise;
      :func:`uqseg.core.functional.score_sums`);
    * ``<set>/ECE_img``, ``/MCE_img``, ``/RMSCE_img``, ``/OE_img`` (``per_image=True``): the mean
      over images of each image's own error (images without a valid pixel are skipped).

    A set without any valid pixel gives NaN for every key (and a warning).

    Args:
        n_bins: number of equal-width bins (10 in the SOD configs, as ASLP).
        confidence: ``'top-label'`` or ``'positive'``.
        ignore_index: label value(s) of pixels excluded everywhere (an int or a tuple).
        per_image: also report the per-image means (off by default, so that the default keys stay
            the four pooled errors).
        nll_brier: also report the pooled NLL and Brier score (their sums are always kept; off by
            default for the same reason).
        nll_eps: a binary head's probabilities are clamped to at least this value inside the NLL's
            log (softmax heads need no clamp: their NLL comes from the logits).
        plot: write a reliability diagram per set (PNG) into ``plot_dir`` or, if that is None,
            into ``<work_dir>/<timestamp>/uq_plots/`` of the current runner (found via
            ``MMLogger.get_current_instance()``; a metric does not see the runner). File name
            ``[<prefix>_]reliability_<set>.png``; overwritten at each evaluation.
        plot_dir: folder for the pictures (implies ``plot``).
    """

    default_prefix: Optional[str] = None

    def __init__(self, n_bins: int = 10, confidence: str = 'top-label', ignore_index=255,
                 per_image: bool = False, nll_brier: bool = False, nll_eps: float = 1e-12, plot: bool = False,
                 plot_dir: Optional[str] = None, collect_device: str = 'cpu', prefix: Optional[str] = None,
                 **kwargs) -> None:
        check_metric_kwargs(type(self), kwargs)
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        name = type(self).__name__
        if confidence not in ('top-label', 'positive'):
            raise ValueError(f"{name}: confidence must be 'top-label' or 'positive', got {confidence!r}")
        try:
            self.n_bins = check_n_bins(n_bins)
        except ValueError as e:
            raise ValueError(f'{name}: {e}') from None
        self.confidence = confidence
        self.ignore_index = ignore_index
        self.per_image = per_image
        self.nll_brier = nll_brier
        self.nll_eps = nll_eps
        self.plot = plot
        self.plot_dir = plot_dir

    def image_sums(self, sample: dict) -> torch.Tensor:
        """One image's float64 accumulator states on the prediction's device: the
        ``(3, n_bins)`` calibration state, flattened, followed (``nll_brier=True``) by the
        ``[sum NLL, sum Brier, count]`` state."""
        pred = read_prediction(sample, self.ignore_index)
        if self.confidence == 'positive':
            if not pred.binary:
                raise ValueError("confidence='positive' needs a binary prediction, got "
                                 f'{pred.num_classes} classes ({pred.path})')
            conf, hit = pred.p, pred.label  # 0/1 on valid pixels
        else:
            conf, hit = pred.top_label()
        # read_prediction has checked the values: no second pass over them here
        cal = CalibrationAccumulator(self.n_bins, device=conf.device)
        cal.update(conf, hit, pred.mask, hard=True, validate=False)
        if not self.nll_brier:
            return cal.state.reshape(-1)
        scores = ScoreSumAccumulator(self.nll_eps, device=conf.device)
        if pred.binary:
            scores.update(pred.p, pred.label_float(), pred.mask, validate=False)
        else:
            scores.update(pred.probs[None], pred.label[None], None if pred.mask is None else pred.mask[None],
                          validate=False, logits=pred.logits[None])  # the log-softmax: an exact NLL
        return torch.cat([cal.state.reshape(-1), scores.state])

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
            states = table[:, :3 * n].reshape(-1, 3, n)
            cal = CalibrationAccumulator.from_state(states.sum(0), n_bins=n)
            count = float(cal.state[0].sum())
            if count == 0:
                logger.warning(f'PixelCalibrationMetric: set {name!r} has no valid pixel; its errors are NaN')
            pooled = cal.compute()
            for key in _ERRORS:
                metrics[f'{name}/{key}'] = pooled[key]
            if self.nll_brier:
                scores = ScoreSumAccumulator.from_state(table[:, 3 * n:].sum(0), eps=self.nll_eps).compute()
                metrics[f'{name}/NLL'] = scores['NLL']
                metrics[f'{name}/Brier'] = scores['Brier']
                if scores['NLL-clamped']:  # binary heads' probabilities only: say so beside the number
                    metrics[f'{name}/NLL-clamped'] = scores['NLL-clamped']
            if self.per_image:
                per_img = CalibrationAccumulator.compute_batched(states)
                for key in _ERRORS:
                    metrics[f'{name}/{key}_img'] = nanmean(per_img[key])
            if folder is not None:
                labels = (dict(xlabel='predicted foreground probability', ylabel='foreground frequency')
                          if self.confidence == 'positive' else {})
                plot_reliability_diagram(
                    cal.reliability(), plot_path(folder, 'reliability', name, self.prefix),
                    title=f'{name}: {self.confidence} calibration, {n} bins, {int(count)} pixels',
                    metrics={k: pooled[k] for k in ('ECE', 'OE')}, **labels)
        return metrics
