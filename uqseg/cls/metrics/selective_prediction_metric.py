"""``SelectivePredictionMetric``: the selective-prediction report of a classifier, in mmpretrain.

A thin reader over :func:`uqseg.core.selective.selective_report` (formulas, keys and references
there and in ``docs/metrics.md#selective-prediction``): ``process`` keeps per sample the model's
outputs (``pred_logits`` with metainfo ``output_kind`` / ``default_score`` when the head put them
there, as ``OutputLayerClsHead`` does; otherwise ``pred_score``, kind ``'probs'``), ``gt_label``
and metainfo ``set_name``; ``compute_metrics`` stacks them and calls the static :meth:`calculate`
(as mmpretrain's ``Accuracy``). Samples of the ``ood_sets`` are the OOD data of the report
(their labels are not used); every other sample is in-distribution.

A prediction of several members (``EnsembleClassifier``, ``MCDropoutImageClassifier``,
``EnsembleClsTTA``: ``pred_logits`` the log of the mean probability, metainfo ``member_scores``,
``members``, ``member_kinds`` and the field ``pred_member_scores``) is scored as one model, and its
member maps are confidences too: ``confidences=('max-prob', 'mutual-information')``; ``'own'`` is
its ``default_score``, ``mutual-information``.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement
from mmengine.visualization import Visualizer
from mmpretrain.registry import METRICS
from PIL import Image

from uqseg.cls.models.classifiers.member_outputs import sample_member_maps
from uqseg.cls.outputs import check_labelled, ood_mask, sample_label
from uqseg.core.plots import plot_reliability_diagram, plot_risk_coverage_curves
from uqseg.core.scores import (
    MEMBER_KINDS_KEY,
    OUTPUT_KIND_KEY,
    OWN_SCORE,
    OWN_SCORE_KEY,
    PROBS,
    check_score_name,
)
from uqseg.core.selective import CONFIDENCES, as_tensor, selective_report
from uqseg.engine.runtime_info import current_iter

__all__ = ['SelectivePredictionMetric', 'OWN_SCORE']

_DEFAULT_SET = 'all'


@METRICS.register_module()
class SelectivePredictionMetric(BaseMetric):
    """Selective prediction, calibration and (with ``ood_sets``) OOD detection of a classifier.

    Args:
        confidences: confidences to rank by (:data:`uqseg.core.selective.CONFIDENCES`, the
            names of :data:`uqseg.core.scores.SCORES` the model has, the member scores
            :data:`uqseg.core.scores.MEMBER_SCORES` of a prediction of several members), and ``'own'``: the model's
            own score (the ``default_score`` its head puts in each sample's metainfo; the keys then
            carry that score's name, e.g. ``AURC[vacuity]``). A model without one (a plain head
            gives only ``pred_score``) raises at ``compute_metrics``.
        accuracy_targets, coverages, n_bins, fpr_tpr: as :func:`uqseg.core.selective.selective_report`.
        ood_sets: names (metainfo ``set_name``) of the sets whose samples are OOD; each must be
            seen, and some other sample must be in-distribution. A sample without ``set_name`` is
            in the set ``'all'``.
        out_dir: if given, ``risk_coverage.png`` (the curve of each confidence) and
            ``reliability.png`` (top-label, ``n_bins`` bins) are written there at every evaluation
            (overwritten) with :mod:`uqseg.core.plots`, and the same images go to mmengine's current
            ``Visualizer`` (``add_image('<prefix>_risk_coverage', rgb, step=iter)``, e.g. TensorBoard)
            when one exists.
        collect_device, prefix: as mmengine's ``BaseMetric`` (default prefix ``'selective'``).

    Results: the keys of ``selective_report`` (``accuracy``, ``ECE``, ``NLL``, ``Brier``,
    ``AURC[<c>]``, ``E-AURC[<c>]``, ``AUROC[<c>]``, ``cov@acc<a>[<c>]``, ``risk@cov<v>[<c>]``, with
    ``ood_sets`` ``OOD-AUROC[<c>]``, ``OOD-FPR95[<c>]``), as floats; mmengine adds the prefix.
    """

    default_prefix: Optional[str] = 'selective'

    def __init__(self, confidences: Sequence[str] = CONFIDENCES, accuracy_targets: Sequence[float] = (0.95, 0.99),
                 coverages: Sequence[float] = (0.5, 0.8, 0.9, 0.95), n_bins: int = 15,
                 ood_sets: Optional[Sequence[str]] = None, fpr_tpr: float = 0.95, out_dir: Optional[str] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        confidences = (confidences,) if isinstance(confidences, str) else tuple(confidences)
        if not confidences:
            raise ValueError('SelectivePredictionMetric: confidences is empty; give at least one, e.g. '
                             f'{CONFIDENCES}')
        for name in confidences:
            if name != OWN_SCORE:
                check_score_name(name, 'SelectivePredictionMetric: confidences')
        ood_sets = () if ood_sets is None else ((ood_sets,) if isinstance(ood_sets, str) else tuple(ood_sets))
        for s in ood_sets:
            if not isinstance(s, str):
                raise ValueError(f'SelectivePredictionMetric: ood_sets must be set names (str), got {s!r}')
        self.confidences = confidences
        self.accuracy_targets = tuple(accuracy_targets)
        self.coverages = tuple(coverages)
        self.n_bins = n_bins
        self.ood_sets = ood_sets
        self.fpr_tpr = fpr_tpr
        self.out_dir = out_dir
        # the arguments of the report, checked now rather than after a whole test run
        selective_report(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 'probs', CONFIDENCES,
                         self.accuracy_targets, self.coverages, n_bins, fpr_tpr=fpr_tpr)

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep each sample's outputs, label and set name (on the CPU)."""
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            kind, default = sample.get(OUTPUT_KIND_KEY), sample.get(OWN_SCORE_KEY)
            if 'pred_logits' in sample and kind is not None:
                values = as_tensor(sample['pred_logits'], 'SelectivePredictionMetric: pred_logits')
            elif 'pred_score' in sample:
                values, kind = as_tensor(sample['pred_score'], 'SelectivePredictionMetric: pred_score'), PROBS
            else:
                keys = sorted(k for k in sample if not k.startswith('_'))
                raise KeyError(f'SelectivePredictionMetric: a data sample has neither pred_score nor pred_logits '
                               f'with metainfo output_kind (fields: {keys}); {sample.get("img_path", "")}')
            label = sample_label(sample.get('gt_label'), 'SelectivePredictionMetric')
            maps = sample_member_maps(sample, 'SelectivePredictionMetric')
            self.results.append(dict(values=values.detach().cpu().reshape(-1), kind=kind, default_score=default,
                                     label=label, set_name=str(sample.get('set_name', _DEFAULT_SET)), maps=maps,
                                     member_kinds=tuple(sample.get(MEMBER_KINDS_KEY) or ())))

    def _resolve(self, results: list) -> tuple[str, Optional[str]]:
        """The output kind all samples share and their own score (None without one)."""
        kinds = {r['kind'] for r in results}
        if len(kinds) > 1:
            raise ValueError(f'SelectivePredictionMetric: the samples mix output kinds {sorted(kinds)}; one model '
                             'gives one kind (pred_logits with output_kind, or pred_score)')
        kind = kinds.pop()
        owns = {r['default_score'] for r in results}
        if len(owns) > 1:
            raise ValueError(f'SelectivePredictionMetric: the samples carry different default_score values '
                             f'{sorted(map(str, owns))}; one model has one own score')
        return kind, owns.pop()

    @staticmethod
    def _maps(rows: list) -> tuple[Optional[dict], tuple]:
        """The rows' member maps stacked (name -> (n,) float64) and the members' kinds; None and () for
        one model. Rows with and without maps, or with other names, are a ``ValueError``."""
        with_maps = [r['maps'] is not None for r in rows]
        if not any(with_maps):
            return None, ()
        if not all(with_maps):
            raise ValueError('SelectivePredictionMetric: some samples carry member maps (an ensemble, MC dropout or '
                             'TTA prediction) and some do not; one model gives one kind of prediction')
        names = list(rows[0]['maps'])
        if any(list(r['maps']) != names for r in rows):
            raise ValueError('SelectivePredictionMetric: the samples carry different member scores; one model '
                             f'gives the same maps for every sample (the first: {names})')
        maps = {n: torch.stack([r['maps'][n] for r in rows]) for n in names}
        return maps, rows[0]['member_kinds']

    def compute_metrics(self, results: list) -> dict:
        if not results:
            raise ValueError('SelectivePredictionMetric: no sample was processed')
        kind, own = self._resolve(results)
        names = []
        for name in self.confidences:
            if name == OWN_SCORE:
                if own is None or kind == PROBS:
                    raise ValueError(
                        "SelectivePredictionMetric: confidences contains 'own' (the model's own score), but the "
                        'samples carry no output_kind / default_score metainfo with pred_logits: the head is a '
                        "plain one (it gives only pred_score). Use an OutputLayerClsHead (EDLLayer, DisMaxLayer, "
                        f"IsoMaxPlusLayer) or drop 'own'; available here: {CONFIDENCES}")
                name = own
            names.append(name)
        set_names = [r['set_name'] for r in results]
        is_ood = ood_mask(set_names, self.ood_sets, 'SelectivePredictionMetric').tolist()
        check_labelled([r['label'] for r in results], set_names, is_ood, 'SelectivePredictionMetric')
        id_rows = [r for r, o in zip(results, is_ood) if not o]
        ood_rows = [r for r, o in zip(results, is_ood) if o]
        values = torch.stack([r['values'] for r in id_rows])
        labels = torch.tensor([r['label'] for r in id_rows], dtype=torch.long)
        ood_values = torch.stack([r['values'] for r in ood_rows]) if ood_rows else None
        self._maps(results)  # the same maps in every sample
        maps, member_kinds = self._maps(id_rows)
        ood_maps = self._maps(ood_rows)[0] if ood_rows else None
        report = self.calculate(values, labels, kind, names, self.accuracy_targets, self.coverages, self.n_bins,
                                ood_values, self.fpr_tpr, curves=self.out_dir is not None, member_maps=maps,
                                ood_member_maps=ood_maps, member_kinds=member_kinds)
        if self.out_dir is not None:
            self._draw(report)
        return {k: v for k, v in report.items() if k not in ('curves', 'reliability')}

    @staticmethod
    def calculate(pred, target, kind: str = 'probs', confidences: Sequence[str] = CONFIDENCES,
                  accuracy_targets: Sequence[float] = (0.95, 0.99), coverages: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
                  n_bins: int = 15, ood_pred=None, fpr_tpr: float = 0.95, curves: bool = False,
                  member_maps: Optional[dict] = None, ood_member_maps: Optional[dict] = None,
                  member_kinds: Sequence[str] = ()) -> dict:
        """The report of stacked outputs: ``pred`` ``(N, K)`` of ``kind`` (``'probs'`` for
        ``pred_score``), ``target`` ``(N,)``, ``ood_pred`` ``(M, K)`` or None, the member maps of a
        prediction of several members (name -> ``(N,)`` / ``(M,)``); =
        :func:`uqseg.core.selective.selective_report`, errors prefixed with the metric's name."""
        try:
            return selective_report(pred, target, kind, confidences, accuracy_targets, coverages, n_bins,
                                    ood_z=ood_pred, fpr_tpr=fpr_tpr, curves=curves, member_maps=member_maps,
                                    ood_member_maps=ood_member_maps, member_kinds=member_kinds,
                                    source='the samples')
        except ValueError as e:
            raise ValueError(f'SelectivePredictionMetric: {e}') from e

    def _draw(self, report: dict) -> None:
        """The two PNGs in ``out_dir``, also sent to the current Visualizer if there is one."""
        step = current_iter()
        names = list(report['curves'])
        labels = {f'{c} (AURC {report[f"AURC[{c}]"]:.4f})': report['curves'][c] for c in names}
        paths = {
            'risk_coverage': plot_risk_coverage_curves(
                labels, osp.join(self.out_dir, 'risk_coverage.png'), title='risk-coverage',
                error_rate=1 - report['accuracy']),
            'reliability': plot_reliability_diagram(
                report['reliability'], osp.join(self.out_dir, 'reliability.png'), title='top-label reliability',
                metrics={'ECE': report['ECE'], 'accuracy': report['accuracy']}, count_label='images')}
        try:
            vis = Visualizer.get_current_instance()
        except RuntimeError:  # no visualizer was created (a metric used outside a runner)
            return
        for name, path in paths.items():
            with Image.open(path) as im:
                vis.add_image(f'{self.prefix}_{name}', np.asarray(im.convert('RGB')), step=step)
