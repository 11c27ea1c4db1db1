"""Pixel-level misclassification detection: how well a confidence / uncertainty map ranks errors."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmengine.logging import MMLogger
from mmseg.registry import METRICS

from ...core.accumulators import ConfidenceHistogram
from ...core.checks import check_n_bins, check_tpr, fpr_key
from ...core.functional import nanmean
from ...core.plots import plot_risk_coverage
from ..outputs import check_metric_score
from .arguments import check_metric_kwargs
from .folding import FoldingMetric
from .plot_files import plot_path, resolve_plot_dir
from .prediction import ranking_map, read_prediction, set_name_of

__all__ = ['PixelUncertaintyMetric']


@METRICS.register_module()
class PixelUncertaintyMetric(FoldingMetric):
    """Misclassification detection over the valid pixels of each test set (Hendrycks & Gimpel 2017;
    selective prediction, Geifman & El-Yaniv 2017; Galil et al. 2023).

    A pixel is *correct* when the top-label prediction (``argmax_c p_c``; binary ``p > 0.5``)
    equals its label; with ``prediction='pred_sem_seg'`` mmseg's ``pred_sem_seg`` is used instead
    (for a binary head thresholded at the head's ``threshold``). Its *confidence* comes from
    (see :func:`.prediction.score_map`):

    * ``score='max-prob'`` (default): ``max_c p_c`` (binary ``max(p, 1 - p)``);
    * ``score='entropy'``: ``1 - H(p) / log C``;
    * a named score of the head's channels: ``'vacuity'`` (EDL), ``'MDS'`` / ``'MMLS'`` /
      ``'MMLES'`` (DisMax, IsoMax+), ``'own'`` (the head's own score); a score the head does not
      have is an error naming it (``docs/metrics.md#confidence-scores``);
    * ``score_field='seg_uncertainty'``: a map put in the data sample (PixelData or
      tensor, (1, H, W) or (H, W)) by other code. With
      ``score_is='uncertainty'`` (the default for a field) higher values mean *less* confident;
      with ``'confidence'``, more. ``score_range=(lo, hi)`` must hold every value (mapped
      linearly onto [0, 1]; values outside raise): it fixes the histogram's resolution.

    Pixels are ranked by the named score's ranking key (:func:`.prediction.score_key_map`,
    :func:`uqseg.core.confidence_keys.confidence_key`: the order of the confidence, resolved where
    the confidence saturates, e.g. max-prob 1.0 at logit gaps beyond ~17 in float32), or by a
    field's [0, 1] confidence. Every image feeds a core
    :class:`~uqseg.core.accumulators.ConfidenceHistogram` (its valid pixels' keys on
    :func:`~uqseg.core.accumulators.key_coordinate`, or the field's confidence, split by correct
    / wrong, ``n_bins`` bins, computed on the prediction's device); the states are summed per set
    (memory O(sets x bins), see :mod:`.folding`) and the metrics computed from the pooled
    histogram, each bin taken as one tie group (error bounded, see ``ConfidenceHistogram``;
    ``docs/metrics.md#ranking-keys-in-the-histogram``).

    Keys per set (fractions):

    * ``<set>/AURC``: area under the risk-coverage curve, (1/N) sum_k risk(k), pixels sorted by
      confidence descending, ties in expectation;
    * ``<set>/EAURC``: AURC minus the AURC of the perfect ordering;
    * ``<set>/AUROC``: AUROC of confidence for correct (positive) vs wrong pixels;
    * ``<set>/AUPR``: AUPR-Error, errors the positive class scored by low confidence;
    * ``<set>/FPR@95TPR``: fraction of wrong pixels accepted at the highest threshold that
      accepts 95% of the correct ones (the key follows ``tpr``);
    * with ``per_image=True`` the same with ``_img``: the mean over images of each image's value
      (images where a metric is undefined, e.g. AUROC without errors, are skipped).

    Undefined values are NaN: every key for a set without valid pixels; AUROC / FPR when all
    pixels are correct or all wrong; AUPR without errors.

    Args:
        n_bins: histogram bins (default 10000; 160 kB per set).
        tpr: true-positive rate of the FPR key.
        per_image: also report per-image means.
        prediction: ``'argmax'`` or ``'pred_sem_seg'``.
        ignore_index: label value(s) of pixels excluded everywhere (an int or a tuple).
        plot / plot_dir: write a risk-coverage curve per set as
            ``[<prefix>_]risk_coverage_<set>.png`` (as :class:`PixelCalibrationMetric`).
    """

    default_prefix: Optional[str] = None

    def __init__(self, score: str = 'max-prob', score_field: Optional[str] = None, score_is: Optional[str] = None,
                 score_range: Sequence[float] = (0.0, 1.0), n_bins: int = 10000, tpr: float = 0.95,
                 per_image: bool = True, prediction: str = 'argmax', ignore_index=255,
                 plot: bool = False, plot_dir: Optional[str] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, **kwargs) -> None:
        check_metric_kwargs(type(self), kwargs)
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        self.score_is = check_metric_score(score, score_field, score_is, score_range)
        check_n_bins(n_bins)
        check_tpr(tpr)
        if prediction not in ('argmax', 'pred_sem_seg'):
            raise ValueError(f"prediction must be 'argmax' or 'pred_sem_seg', got {prediction!r}")
        self.score, self.score_field, self.score_range = score, score_field, tuple(score_range)
        self.n_bins, self.tpr, self.per_image = n_bins, tpr, per_image
        self.prediction, self.ignore_index = prediction, ignore_index
        self.plot, self.plot_dir = plot, plot_dir
        self.coordinate = 'key' if score_field is None else 'confidence'
        self._keys = ('AURC', 'EAURC', 'AUROC', 'AUPR', fpr_key(tpr))

    def image_histogram(self, sample: dict) -> ConfidenceHistogram:
        """The ranking histogram of one image's valid pixels (state on its device)."""
        pred = read_prediction(sample, self.ignore_index)
        if self.prediction == 'pred_sem_seg':
            if 'pred_sem_seg' not in sample:
                raise KeyError(f"{pred.path}: prediction='pred_sem_seg' but the sample has no pred_sem_seg")
            ps = sample['pred_sem_seg']['data']
            ps = ps[0] if ps.dim() == 3 else ps
            if ps.shape != pred.label.shape:
                raise ValueError(f'{pred.path}: pred_sem_seg of size {tuple(ps.shape)} but ground truth of size '
                                 f'{tuple(pred.label.shape)}')
            correct = ps.to(pred.label.device).long() == pred.label
        else:
            correct = pred.correct()
        rank = ranking_map(pred, sample, self.score, self.score_field, self.score_is, self.score_range)
        hist = ConfidenceHistogram(self.n_bins, device=rank.device, coordinate=self.coordinate)
        hist.update(rank, correct, pred.mask, validate=False)  # read_prediction checked the values
        return hist

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            hist = self.image_histogram(sample).to('cpu')
            if self.per_image:
                m = hist.compute(self.tpr)
                light = tuple(m[k] for k in self._keys)  # Python floats: no small tensors pinning the heap
            else:
                light = None
            self.add_result(set_name_of(sample), light, hist.state)

    def compute_metrics(self, results: list) -> dict[str, float]:
        sums, lights = self.heavy_sums(results)
        logger = MMLogger.get_current_instance()
        folder = resolve_plot_dir(self.plot, self.plot_dir, type(self).__name__)
        metrics = {}
        for name, state in sums.items():
            hist = ConfidenceHistogram.from_state(state, n_bins=self.n_bins, coordinate=self.coordinate)
            if state.sum() == 0:
                logger.warning(f'PixelUncertaintyMetric: set {name!r} has no valid pixel; its metrics are NaN')
            pooled = hist.compute(self.tpr)
            for key in self._keys:
                metrics[f'{name}/{key}'] = pooled[key]
            if self.per_image:
                rows = [r for r in lights[name] if r is not None]
                table = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(self._keys))
                for j, key in enumerate(self._keys):
                    metrics[f'{name}/{key}_img'] = nanmean(table[:, j])
            if folder is not None:
                src = self.score_field or self.score
                plot_risk_coverage(hist.risk_coverage(), plot_path(folder, 'risk_coverage', name, self.prefix),
                                   title=f'{name}: pixels ranked by {src}, {int(state.sum())} pixels',
                                   metrics={k: pooled[k] for k in ('AURC', 'EAURC', 'AUROC')})
        return metrics
