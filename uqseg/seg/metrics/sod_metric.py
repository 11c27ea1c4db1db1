"""Salient-object-detection scores per test set, computed with pysodmetrics (``pip install "uqseg[sod]"``)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from uqseg.optional import installed, require

if installed('py_sod_metrics'):  # the sod extra; SODMetric() says how to install it
    import py_sod_metrics as sod
from .arguments import check_metric_kwargs
from .prediction import read_prediction, set_name_of


def sod_image_scores(pred: np.ndarray, gt: np.ndarray, beta2: float = 0.3) -> dict:
    """pysodmetrics' per-image statistics of one uint8 saliency map ``pred`` and 0/255 ``gt``.

    Returns the MAE, S-measure, adaptive F and E and the 256-threshold F and E curves. Averaging
    them over images and taking max/mean of the mean curves gives exactly what pysodmetrics'
    evaluators report for the same images.
    """
    fm = sod.FmeasureV2(metric_handlers={'fm': sod.FmeasureHandler(with_dynamic=True, with_adaptive=True,
                                                                   beta=beta2)})
    mae, sm, em = sod.MAE(), sod.Smeasure(), sod.Emeasure()
    for m in (fm, mae, sm, em):
        m.step(pred=pred, gt=gt)
    f = fm.get_results()['fm']
    e = em.get_results()['em']
    return dict(mae=float(mae.get_results()['mae']), sm=float(sm.get_results()['sm']),
                adp_f=float(f['adaptive']), f_curve=np.asarray(f['dynamic'], np.float64),
                adp_e=float(e['adp']), e_curve=np.asarray(e['curve'], np.float64))


@METRICS.register_module()
class SODMetric(BaseMetric):
    """MAE, max-F, mean-F (beta^2 = 0.3), S-measure and E-measure per test set (pysodmetrics).

    The foreground probability map is written as a uint8 saliency map (``round(255 p)``), as
    SOD papers save them, and scored against the 0/1 ground truth (as 0/255). pysodmetrics
    min-max normalises each map (MATLAB ``mapminmax``) before every score, MAE included, and
    averages per-image scores and curves (so on an all-background set such as DTD, MAE measures
    the normalised map and is large whenever the map is not constant); max-F and mean-F are the
    max and mean of the mean F curve over its 256 thresholds, likewise max-E and mean-E. Ignored
    pixels (``ignore_index``) are scored as background: SOD ground truth has none, and pysodmetrics cannot skip pixels.

    Keys: ``<set>/MAE``, ``<set>/maxF``, ``<set>/meanF``, ``<set>/adpF``, ``<set>/S``,
    ``<set>/maxE``, ``<set>/meanE``, ``<set>/adpE``.
    """

    default_prefix: Optional[str] = None

    def __init__(self, beta2: float = 0.3, ignore_index: int = 255, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, **kwargs) -> None:
        check_metric_kwargs(type(self), kwargs)
        require('py_sod_metrics', 'SODMetric')
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        self.beta2 = beta2
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = read_prediction(sample, self.ignore_index)
            if pred.foreground() is None:
                raise ValueError(f'SODMetric needs a binary prediction (one sigmoid channel or a two-class '
                                 f'softmax), got {pred.num_classes} classes ({pred.path})')
            saliency = pred.saliency_map().cpu().numpy()
            gt = ((pred.label == 1) & pred.valid).to(torch.uint8).cpu().numpy() * 255
            self.results.append((set_name_of(sample), sod_image_scores(saliency, gt, self.beta2)))

    def compute_metrics(self, results: list) -> dict[str, float]:
        per_set: dict[str, list] = OrderedDict()
        for name, scores in results:
            per_set.setdefault(name, []).append(scores)
        metrics = {}
        for name, rows in per_set.items():
            f_curve = np.mean([r['f_curve'] for r in rows], axis=0)
            e_curve = np.mean([r['e_curve'] for r in rows], axis=0)
            metrics.update({
                f'{name}/MAE': float(np.mean([r['mae'] for r in rows])),
                f'{name}/maxF': float(f_curve.max()),
                f'{name}/meanF': float(f_curve.mean()),
                f'{name}/adpF': float(np.mean([r['adp_f'] for r in rows])),
                f'{name}/S': float(np.mean([r['sm'] for r in rows])),
                f'{name}/maxE': float(e_curve.max()),
                f'{name}/meanE': float(e_curve.mean()),
                f'{name}/adpE': float(np.mean([r['adp_e'] for r in rows])),
            })
        return metrics

