"""Per-pixel confidence / uncertainty maps of an mmseg prediction, drawn beside the image and its mask."""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import matplotlib
import numpy as np
import torch

from ..core.plots import new_figure, save_figure
from .metrics.prediction import DensePrediction, field_tensor, raw_score_map

__all__ = ['uncertainty_panels', 'save_uncertainty_figure']


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def uncertainty_panels(pred: DensePrediction, sample: Optional[dict] = None, score_field: Optional[str] = None,
                       has_gt: bool = True, scores: Sequence[str] = ()) -> dict[str, dict]:
    """Panels for :func:`save_uncertainty_figure` from a
    :class:`~uqseg.seg.metrics.prediction.DensePrediction`.

    Returns an ordered ``{title: dict(data=(H, W) array, cmap=..., vmin=..., vmax=...)}``:
    ground truth (ignored pixels grey) and errors (when ``has_gt``), the prediction (binary:
    foreground probability; multi-class: predicted class), the top-label confidence
    ``max_c p_c``, the normalised entropy ``H(p) / log C``, each named score of ``scores``
    (e.g. EDL's ``vacuity``, DisMax's ``MMLES``; :func:`.metrics.prediction.raw_score_map`) and,
    with ``score_field``, that field of the data sample, each on its own colour scale.
    """
    panels: dict[str, dict] = {}
    valid = _np(pred.valid) > 0
    if has_gt:
        gt = _np(pred.label)
        gt = np.where(valid, gt, np.nan)
        panels['ground truth'] = dict(data=gt, cmap='gray' if pred.binary else 'tab20', vmin=0,
                                      vmax=1 if pred.binary else max(pred.num_classes - 1, 1))
    if pred.binary:
        panels['foreground probability'] = dict(data=_np(pred.p), cmap='gray', vmin=0, vmax=1)
    else:
        panels['prediction'] = dict(data=_np(pred.prediction()), cmap='tab20', vmin=0,
                                    vmax=max(pred.num_classes - 1, 1))
    conf, correct = pred.top_label()
    panels['confidence (max p)'] = dict(data=_np(conf), cmap='viridis', vmin=1.0 / pred.num_classes, vmax=1)
    ent = _np(raw_score_map(pred, 'entropy'))
    panels['entropy / log C'] = dict(data=ent, cmap='magma', vmin=0, vmax=1)
    if has_gt:
        err = np.where(valid, 1.0 - _np(correct), np.nan)
        panels['errors'] = dict(data=err, cmap='Reds', vmin=0, vmax=1)
    extra = [(name, _np(raw_score_map(pred, name))) for name in scores]
    if score_field is not None:
        m = field_tensor(sample or {}, score_field, pred.path)
        extra.append((score_field, _np(m[0] if m.dim() == 3 else m)))
    for name, m in extra:
        lo, hi = float(np.nanmin(m)), float(np.nanmax(m))
        panels[name] = dict(data=m, cmap='magma', vmin=lo, vmax=hi if hi > lo else lo + 1)
    return panels


def save_uncertainty_figure(image: Optional[np.ndarray], panels: Mapping[str, dict], path: str,
                            title: str = '') -> str:
    """Write ``image`` (H, W, 3 RGB uint8, or None) and the ``panels`` side by side to ``path``."""
    items = ([('image', None)] if image is not None else []) + list(panels.items())
    cols = min(4, len(items))
    rows = math.ceil(len(items) / cols)
    fig = new_figure(3.0 * cols, 3.1 * rows + (0.3 if title else 0))
    for i, (name, spec) in enumerate(items):
        ax = fig.add_subplot(rows, cols, i + 1)
        if spec is None:
            ax.imshow(image)
        else:
            cmap = _cmap(spec.get('cmap', 'viridis'))
            im = ax.imshow(np.ma.masked_invalid(spec['data']), cmap=cmap, vmin=spec.get('vmin'),
                           vmax=spec.get('vmax'), interpolation='nearest')
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def _cmap(name: str):
    return matplotlib.colormaps[name].with_extremes(bad='#888888')  # ignored pixels grey
