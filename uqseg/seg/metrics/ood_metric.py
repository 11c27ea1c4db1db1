"""Out-of-distribution detection: does the model's confidence separate in- from out-of-distribution data?"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from mmengine.logging import MMLogger
from mmseg.registry import METRICS

from ...core.accumulators import ConfidenceHistogram, key_coordinate
from ...core.binning import histogram
from ...core.checks import check_n_bins, check_tpr, fpr_key
from ...core.functional import aupr, auroc, fpr_at_tpr
from ..outputs import check_metric_score
from .arguments import check_metric_kwargs
from .folding import FoldingMetric
from .prediction import ignored_labels, ranking_map, read_prediction, score_map, set_name_of

__all__ = ['OODDetectionMetric']


@METRICS.register_module()
class OODDetectionMetric(FoldingMetric):
    """AUROC, FPR@95TPR and AUPR of confidence separating in-distribution (ID) from OOD data.

    ``ood_sets`` are test sets whose every pixel is out-of-distribution (e.g. DTD textures in an
    SOD benchmark); the ID data are the ``id_sets`` (default: every other set seen, pooled).
    Confidence per pixel as :class:`PixelUncertaintyMetric` (``score='max-prob'`` by default,
    ``'entropy'``, or ``score_field`` with ``score_is`` / ``score_range``). ID is the positive
    class, scored by confidence (Hendrycks & Gimpel 2017):

    * image level: one score per image, the mean (``image_score='mean'``, default) confidence
      over its valid pixels, or the median (the lower median for an even count) ranked by its
      key (the median pixel's ranking key on :func:`~uqseg.core.accumulators.key_coordinate`,
      the order of its confidence without saturation; a field: its confidence); exact (sklearn
      conventions, ties counted 1/2);
    * pixel level (suffix ``_px``): every valid pixel of the ID sets against every pixel of the
      OOD set, ranked by the score's ranking key (:func:`.prediction.score_key_map`; a field by
      its confidence), from ``n_bins``-bin histograms (error bounded, as
      :class:`~uqseg.core.accumulators.ConfidenceHistogram` with ``coordinate='key'``: ID pixels
      as its "correct" row, OOD pixels as its "wrong" row).

    Keys per OOD set ``<ood>``: ``<ood>/OOD_AUROC``, ``<ood>/OOD_FPR@95TPR`` (fraction of OOD
    images accepted at the highest threshold that accepts 95% of ID images; the key follows
    ``tpr``), ``<ood>/OOD_AUPR`` (AUPR-Out: OOD positive, scored by low confidence), and
    ``<ood>/OOD_AUROC_px``, ``/OOD_FPR@95TPR_px``, ``/OOD_AUPR_px``. NaN (with a warning) when the
    OOD set or the ID data were not seen, or have no valid pixel; images without valid pixels are
    left out of the image level.

    **OOD pixels inside images** (``ood_index``, e.g. 254 in the shapes demo, whose ``ood`` set
    holds objects of an unseen class): in the ``ood_sets``, the pixels labelled ``ood_index``
    are OOD and every other valid pixel of the same set is ID (the anomaly-segmentation protocol
    of Fishyscapes / SegmentMeIfYouCan); only the pixel-level keys (``_px``) are reported. The mode
    holds for every set of ``ood_sets`` (whole-image OOD sets need a second metric without
    ``ood_index``), and ``id_sets`` does not apply. Other metrics reading that set leave the OOD pixels out with
    ``ignore_index=(255, 254)``.
    """

    default_prefix: Optional[str] = None

    def __init__(self, ood_sets: Sequence[str] = ('DTD',), id_sets: Optional[Sequence[str]] = None,
                 score: str = 'max-prob', score_field: Optional[str] = None, score_is: Optional[str] = None,
                 score_range: Sequence[float] = (0.0, 1.0), image_score: str = 'mean', n_bins: int = 10000,
                 tpr: float = 0.95, ignore_index=255, ood_index: Optional[int] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None, **kwargs) -> None:
        check_metric_kwargs(type(self), kwargs)
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        if isinstance(ood_sets, str):
            ood_sets = [ood_sets]
        if not ood_sets:
            raise ValueError('ood_sets must name at least one set')
        if id_sets is not None:
            id_sets = [id_sets] if isinstance(id_sets, str) else list(id_sets)
            both = set(id_sets) & set(ood_sets)
            if both:
                raise ValueError(f'sets {sorted(both)} are in both id_sets and ood_sets')
        self.score_is = check_metric_score(score, score_field, score_is, score_range)
        if image_score not in ('mean', 'median'):
            raise ValueError(f"image_score must be 'mean' or 'median', got {image_score!r}")
        check_n_bins(n_bins)
        check_tpr(tpr)
        self.ood_sets, self.id_sets = list(ood_sets), id_sets
        self.score, self.score_field, self.score_range = score, score_field, tuple(score_range)
        self.image_score, self.n_bins, self.tpr, self.ignore_index = image_score, n_bins, tpr, ignore_index
        ignored = ignored_labels(ignore_index)
        if ood_index is not None and (isinstance(ood_index, bool) or not isinstance(ood_index, int)
                                      or ood_index in ignored):
            raise ValueError(f'ood_index must be an int label other than ignore_index={ignore_index!r}, '
                             f'got {ood_index!r}')
        if ood_index is not None and id_sets is not None:
            raise ValueError('OODDetectionMetric: ood_index scores each OOD set against its own other pixels; '
                             'id_sets does not apply (give one or the other; for whole-image OOD sets beside '
                             'in-image ones use two metrics)')
        self.ood_index = ood_index
        self._read_ignore = ignored if ood_index is None else ignored + (ood_index,)
        self._fpr = fpr_key(tpr)
        self._coordinate = 'key' if score_field is None else 'confidence'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = read_prediction(sample, self._read_ignore)
            rank = ranking_map(pred, sample, self.score, self.score_field, self.score_is, self.score_range)
            if self.score_field is None:
                rank = key_coordinate(rank)  # the histogram's coordinate (float64, not binned yet)
            name = set_name_of(sample)
            if self.ood_index is not None and name in self.ood_sets:  # ID and OOD pixels of one image
                ood = pred.label == self.ood_index
                self.add_result(name, None, torch.stack([histogram(rank, self.n_bins, pred.valid & ~ood),
                                                         histogram(rank, self.n_bins, ood)]).cpu())
                continue
            img = math.nan
            if pred.num_valid:
                if self.image_score == 'mean':
                    # a field's rank is its [0, 1] map already; a named score ranks by its key
                    conf = rank if self.score_field is not None else \
                        score_map(pred, sample, self.score, None, self.score_is, self.score_range)
                    img = float((conf.reshape(-1) if pred.mask is None else conf[pred.mask]).double().mean())
                else:
                    img = float((rank.reshape(-1) if pred.mask is None else rank[pred.mask]).median())
            self.add_result(name, img, histogram(rank, self.n_bins, pred.mask).cpu())

    def compute_metrics(self, results: list) -> dict[str, float]:
        sums, lights = self.heavy_sums(results)
        logger = MMLogger.get_current_instance()
        if self.ood_index is not None:
            return self._pixel_ood_metrics(sums, logger)
        id_names = self.id_sets if self.id_sets is not None else [n for n in sums if n not in self.ood_sets]
        id_names = [n for n in id_names if n in sums]
        id_hist = sum((sums[n] for n in id_names), torch.zeros(self.n_bins, dtype=torch.float64))
        id_img = torch.tensor([s for n in id_names for s in lights[n] if not math.isnan(s)], dtype=torch.float64)
        no_id = not id_names or id_hist.sum() == 0
        if no_id:
            logger.warning(f'OODDetectionMetric: no in-distribution pixel seen (ID sets: '
                           f'{self.id_sets if self.id_sets is not None else "every set but " + str(self.ood_sets)}, '
                           f'seen: {list(sums)}); OOD metrics are NaN')
        metrics = {}
        for ood in self.ood_sets:
            if ood not in sums or sums[ood].sum() == 0 or no_id:
                if not no_id:
                    logger.warning(f'OODDetectionMetric: OOD set {ood!r} not seen or without valid pixels; '
                                   'its OOD metrics are NaN')
                for key in ('AUROC', self._fpr, 'AUPR'):
                    metrics[f'{ood}/OOD_{key}'] = math.nan
                    metrics[f'{ood}/OOD_{key}_px'] = math.nan
                continue
            ood_img = torch.tensor([s for s in lights[ood] if not math.isnan(s)], dtype=torch.float64)
            scores = torch.cat([id_img, ood_img]).clamp(0, 1)
            is_id = torch.cat([torch.ones_like(id_img), torch.zeros_like(ood_img)])
            metrics[f'{ood}/OOD_AUROC'] = auroc(scores, is_id)
            metrics[f'{ood}/OOD_{self._fpr}'] = fpr_at_tpr(scores, is_id, self.tpr)
            metrics[f'{ood}/OOD_AUPR'] = aupr(scores, is_id, positive='error')
            px = ConfidenceHistogram.from_state(torch.stack([id_hist, sums[ood]]), n_bins=self.n_bins,
                                                coordinate=self._coordinate).compute(self.tpr)
            metrics[f'{ood}/OOD_AUROC_px'] = px['AUROC']
            metrics[f'{ood}/OOD_{self._fpr}_px'] = px[self._fpr]
            metrics[f'{ood}/OOD_AUPR_px'] = px['AUPR']
        return metrics

    def _pixel_ood_metrics(self, sums: dict, logger) -> dict[str, float]:
        """``ood_index`` mode: per OOD set, its OOD-labelled pixels against its other valid pixels."""
        metrics = {}
        for ood in self.ood_sets:
            state = sums.get(ood)
            if state is None or state[0].sum() == 0 or state[1].sum() == 0:
                logger.warning(f'OODDetectionMetric: set {ood!r} not seen, or without ID or OOD (label '
                               f'{self.ood_index}) pixels; its OOD metrics are NaN')
                state = torch.zeros(2, self.n_bins, dtype=torch.float64)
            px = ConfidenceHistogram.from_state(state, n_bins=self.n_bins,
                                                coordinate=self._coordinate).compute(self.tpr)
            for key in ('AUROC', self._fpr, 'AUPR'):
                metrics[f'{ood}/OOD_{key}_px'] = px[key]
        return metrics
