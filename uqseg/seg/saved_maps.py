"""Saved saliency / probability maps (PNG folders, as SOD papers publish them) scored against masks.

Prediction maps are 8-bit grey PNGs whose value v is the foreground probability v / 255 (what
``uqseg test --out`` writes). Ground truth: 0-255 saliency masks, thresholded at 128 and checked
like ``LoadSaliencyMask`` (:func:`~uqseg.seg.datasets.check_saliency_mask`). Files are matched by
name without suffix. :func:`evaluate_folders` feeds the maps to the metric classes ``uqseg test``
uses (``PixelCalibrationMetric``, ``PixelUncertaintyMetric``, ``SODMetric``) as a binary head's
output (``p = v / 255`` as float32); ``uqseg eval-maps`` is its command line.
"""
from __future__ import annotations

import os
import os.path as osp
import sys
from typing import NamedTuple, Optional

import cv2
import numpy as np
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmengine.utils import ProgressBar
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from .datasets import check_saliency_mask


class MapError(ValueError):
    """A prediction or ground-truth file (or folder) that cannot be scored; the message names it."""


class MatchedNames(NamedTuple):
    common: list  #: the names in both folders, sorted
    only_gt: list  #: masks without a prediction
    only_pred: list  #: predictions without a mask


def list_maps(folder: str, ext: str, what: str) -> dict[str, str]:
    """``{name without suffix: path}`` of the ``ext`` files of ``folder`` (``what`` names it in errors)."""
    if not osp.isdir(folder):
        raise MapError(f'{what} folder {folder!r} does not exist')
    ext = ext.lower()
    found = {}
    for name in sorted(os.listdir(folder)):
        stem, suffix = osp.splitext(name)
        if suffix.lower() == ext and osp.isfile(osp.join(folder, name)):
            if stem in found:
                raise MapError(f'{what} folder {folder!r} has two files named {stem!r}{ext}')
            found[stem] = osp.join(folder, name)
    if not found:
        raise MapError(f'{what} folder {folder!r} has no {ext} file')
    return found


def _names(names: list[str], limit: int = 5) -> str:
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(repr(n) for n in names[:limit]) + more


def match_names(pred: dict[str, str], gt: dict[str, str], allow_unmatched: bool = False) -> MatchedNames:
    """The names of both folders; unmatched names are a :class:`MapError` unless ``allow_unmatched``."""
    only_gt = sorted(set(gt) - set(pred))
    only_pred = sorted(set(pred) - set(gt))
    common = sorted(set(gt) & set(pred))
    if (only_gt or only_pred) and not allow_unmatched:
        lines = []
        if only_gt:
            lines.append(f'{len(only_gt)} ground-truth mask(s) without a prediction: {_names(only_gt)}')
        if only_pred:
            lines.append(f'{len(only_pred)} prediction(s) without a ground-truth mask: {_names(only_pred)}')
        raise MapError('; '.join(lines) + ' (matched by file name without suffix; --allow-unmatched scores '
                       'the common names only)')
    if not common:
        raise MapError('no prediction has a ground-truth mask of the same name')
    return MatchedNames(common, only_gt, only_pred)


def read_pred(path: str) -> np.ndarray:
    """An 8-bit single-channel map (H, W) uint8 (a grey map stored as 3 equal channels too), or :class:`MapError`."""
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise MapError(f'{path}: prediction could not be decoded (corrupt or not an image)')
    if raw.dtype != np.uint8:
        raise MapError(f'{path}: prediction has dtype {raw.dtype}; expected an 8-bit grey map (0-255)')
    if raw.ndim == 3:
        ch = raw[..., :3] if raw.shape[2] >= 3 else raw
        if not all(np.array_equal(ch[..., 0], ch[..., c]) for c in range(1, ch.shape[2])):
            raise MapError(f'{path}: prediction has {raw.shape[2]} channels with different values; expected a '
                           'grey map of the foreground probability')
        raw = ch[..., 0]
    if raw.ndim != 2:
        raise MapError(f'{path}: prediction has shape {raw.shape}; expected (H, W)')
    return raw


def read_gt(path: str) -> np.ndarray:
    """Labels 0/1 (H, W) uint8 from a 0-255 saliency mask (>= 128 is salient), checked as mmseg loads it."""
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    mask = check_saliency_mask(raw, path)
    return (mask >= 128).astype(np.uint8)


def make_sample(prob: np.ndarray, label: np.ndarray, set_name: str, path: str) -> dict:
    """A ``SegDataSample`` dict as the mmseg evaluator hands it to metrics (a binary head's ``p``)."""
    s = SegDataSample(metainfo=dict(set_name=set_name, img_path=path))
    s.seg_logits = PixelData(data=torch.from_numpy(prob)[None])
    s.gt_sem_seg = PixelData(data=torch.from_numpy(label.astype(np.int64))[None])
    return s.to_dict()


def build_metrics(n_bins: int = 10, confidence: str = 'top-label', hist_bins: int = 10000, sod: bool = True,
                  plot_dir: Optional[str] = None) -> list:
    """The metrics of :func:`evaluate_folders`: calibration, misclassification ranking and (``sod``) SOD."""
    cfgs = [dict(type='PixelCalibrationMetric', n_bins=n_bins, confidence=confidence, per_image=True,
                 nll_brier=True, plot_dir=plot_dir),
            dict(type='PixelUncertaintyMetric', n_bins=hist_bins, plot_dir=plot_dir)]
    if sod:
        cfgs.append(dict(type='SODMetric'))
    return [METRICS.build(c) for c in cfgs]


def evaluate_folders(pred_dir: str, gt_dir: str, set_name: Optional[str] = None, n_bins: int = 10,
                     confidence: str = 'top-label', hist_bins: int = 10000, sod: bool = True,
                     resize_pred: bool = False, allow_unmatched: bool = False, pred_ext: str = '.png',
                     gt_ext: str = '.png', plot_dir: Optional[str] = None, progress: bool = False
                     ) -> dict[str, float]:
    """Score every matched pair; returns ``{"<set>/<key>": value}`` as the mmseg metrics do.

    ``set_name`` defaults to the name of ``pred_dir``; ``progress`` shows mmengine's progress bar
    (on stderr) over the maps. A size mismatch is a :class:`MapError` unless ``resize_pred``
    (bilinear, to the mask's size)."""
    init_default_scope('mmseg')
    set_name = set_name or osp.basename(osp.normpath(pred_dir))
    preds = list_maps(pred_dir, pred_ext, 'prediction')
    gts = list_maps(gt_dir, gt_ext, 'ground-truth')
    names = match_names(preds, gts, allow_unmatched)
    if names.only_gt or names.only_pred:
        print(f'warning: scoring {len(names.common)} common name(s); left out {len(names.only_gt)} mask(s) without '
              f'a prediction and {len(names.only_pred)} prediction(s) without a mask', file=sys.stderr)
    metrics = build_metrics(n_bins, confidence, hist_bins, sod, plot_dir)
    bar = ProgressBar(len(names.common), file=sys.stderr) if progress else None
    try:
        for name in names.common:
            pred = read_pred(preds[name])
            gt = read_gt(gts[name])
            if pred.shape != gt.shape:
                if not resize_pred:
                    raise MapError(f'{preds[name]}: prediction of size {pred.shape[1]}x{pred.shape[0]} (WxH) but '
                                   f'ground truth {gts[name]} of size {gt.shape[1]}x{gt.shape[0]} '
                                   '(--resize-pred resizes predictions bilinearly to the mask size)')
                pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
            sample = make_sample(pred.astype(np.float32) / 255, gt, set_name, preds[name])
            for m in metrics:
                m.process({}, [sample])
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:  # end the bar's line (before an error message too)
            sys.stderr.write('\n')
    out: dict[str, float] = {}
    for m in metrics:
        out.update(m.evaluate(len(names.common)))
    return out
