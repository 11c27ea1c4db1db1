"""Score saved saliency maps (PNG folders, as SOD papers publish them) against ground-truth masks.

    python tools/eval_maps.py --pred DIR --gt DIR [--set-name X] [--n-bins 10] [--json out.json]

Prediction maps: 8-bit grey PNGs whose value v is the foreground probability v / 255 (what
``tools/test.py --out`` writes). Ground truth: 0-255 saliency masks, thresholded at 128 and
checked like ``LoadSaliencyMask`` (:func:`uqseg.seg.datasets.check_saliency_mask`). Files are matched
by name without suffix; unmatched names, unreadable files and size mismatches are errors.

The maps go through the same metric classes as ``tools/test.py`` (``PixelCalibrationMetric``,
``PixelUncertaintyMetric``, ``SODMetric``), fed as a binary head's output would be: the metric
sees ``p = v / 255`` as float32. Printed as a table; ``--json`` also writes
``{"<set>/<key>": value}``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import os.path as osp
import sys
from typing import Optional

import cv2
import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import uqseg  # noqa: E402,F401  (registers the metrics)
from uqseg.seg.datasets import check_saliency_mask  # noqa: E402


class MapError(ValueError):
    """A prediction or ground-truth file that cannot be scored; the message names it."""


def list_maps(folder: str, ext: str, what: str) -> dict[str, str]:
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


def match(pred: dict[str, str], gt: dict[str, str], allow_unmatched: bool) -> list[str]:
    only_gt = sorted(set(gt) - set(pred))
    only_pred = sorted(set(pred) - set(gt))
    both = sorted(set(gt) & set(pred))
    if (only_gt or only_pred) and not allow_unmatched:
        lines = []
        if only_gt:
            lines.append(f'{len(only_gt)} ground-truth mask(s) without a prediction: {_names(only_gt)}')
        if only_pred:
            lines.append(f'{len(only_pred)} prediction(s) without a ground-truth mask: {_names(only_pred)}')
        raise MapError('; '.join(lines) + ' (matched by file name without suffix; --allow-unmatched scores '
                       'the common names only)')
    if not both:
        raise MapError('no prediction has a ground-truth mask of the same name')
    if only_gt or only_pred:
        print(f'warning: scoring {len(both)} common name(s); left out {len(only_gt)} mask(s) without a '
              f'prediction and {len(only_pred)} prediction(s) without a mask', file=sys.stderr)
    return both


def _names(names: list[str], limit: int = 5) -> str:
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(repr(n) for n in names[:limit]) + more


def read_pred(path: str) -> np.ndarray:
    """An 8-bit single-channel map (H, W) uint8, or :class:`MapError`."""
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
    """Labels 0/1 (H, W) uint8 from a 0-255 saliency mask (>= 128 is salient)."""
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    mask = check_saliency_mask(raw, path)
    return (mask >= 128).astype(np.uint8)


def make_sample(prob: np.ndarray, label: np.ndarray, set_name: str, path: str) -> dict:
    """A ``SegDataSample`` dict as the mmseg evaluator hands it to metrics (binary head)."""
    s = SegDataSample(metainfo=dict(set_name=set_name, img_path=path))
    s.seg_logits = PixelData(data=torch.from_numpy(prob)[None])
    s.gt_sem_seg = PixelData(data=torch.from_numpy(label.astype(np.int64))[None])
    return s.to_dict()


def build_metrics(n_bins: int, confidence: str, hist_bins: int, sod: bool, plot_dir: Optional[str]) -> list:
    cfgs = [dict(type='PixelCalibrationMetric', n_bins=n_bins, confidence=confidence, per_image=True,
                 nll_brier=True, plot_dir=plot_dir),
            dict(type='PixelUncertaintyMetric', n_bins=hist_bins, plot_dir=plot_dir)]
    if sod:
        cfgs.append(dict(type='SODMetric'))
    return [METRICS.build(c) for c in cfgs]


def evaluate_folders(pred_dir: str, gt_dir: str, set_name: Optional[str] = None, n_bins: int = 10,
                     confidence: str = 'top-label', hist_bins: int = 10000, sod: bool = True,
                     resize_pred: bool = False, allow_unmatched: bool = False, pred_ext: str = '.png',
                     gt_ext: str = '.png', plot_dir: Optional[str] = None) -> dict[str, float]:
    """Score every matched pair; returns ``{"<set>/<key>": value}`` as the mmseg metrics do."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    set_name = set_name or osp.basename(osp.normpath(pred_dir))
    preds = list_maps(pred_dir, pred_ext, 'prediction')
    gts = list_maps(gt_dir, gt_ext, 'ground-truth')
    names = match(preds, gts, allow_unmatched)
    metrics = build_metrics(n_bins, confidence, hist_bins, sod, plot_dir)
    for name in names:
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
    out: dict[str, float] = {}
    for m in metrics:
        out.update(m.evaluate(len(names)))
    return out


def format_table(results: dict[str, float]) -> str:
    width = max(len(k) for k in results) + 2
    lines = [f'{"metric":<{width}}{"value":>12}', '-' * (width + 12)]
    for k, v in results.items():
        lines.append(f'{k:<{width}}{v:>12.6f}' if not math.isnan(v) else f'{k:<{width}}{"nan":>12}')
    return '\n'.join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--pred', required=True, help='folder of predicted maps (8-bit PNG, v/255 = P(foreground))')
    p.add_argument('--gt', required=True, help='folder of ground-truth masks (0-255, thresholded at 128)')
    p.add_argument('--set-name', help='name used in the metric keys (default: the --pred folder name)')
    p.add_argument('--n-bins', type=int, default=10, help='calibration bins (default 10)')
    p.add_argument('--confidence', choices=['top-label', 'positive'], default='top-label',
                   help='calibration confidence: max(p, 1-p) (default) or p of the foreground')
    p.add_argument('--hist-bins', type=int, default=10000,
                   help='histogram bins of the AURC/AUROC metrics (default 10000)')
    p.add_argument('--no-sod', action='store_true', help='skip the SOD metrics (MAE, F, S, E)')
    p.add_argument('--resize-pred', action='store_true',
                   help='resize predictions to the mask size (bilinear) instead of failing on a mismatch')
    p.add_argument('--allow-unmatched', action='store_true',
                   help='score the names present in both folders instead of failing on unmatched files')
    p.add_argument('--pred-ext', default='.png')
    p.add_argument('--gt-ext', default='.png')
    p.add_argument('--plot-dir', help='also write a reliability diagram and a risk-coverage curve here')
    p.add_argument('--json', help='write the results to this JSON file')
    return p.parse_args(argv)


class _QuietPrefixWarning(logging.Filter):
    """Drop mmengine's "prefix is not set" notice: the keys carry the set name instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return 'prefix is not set' not in record.getMessage()


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().addFilter(_QuietPrefixWarning())
    try:
        results = evaluate_folders(args.pred, args.gt, args.set_name, args.n_bins, args.confidence,
                                   args.hist_bins, not args.no_sod, args.resize_pred, args.allow_unmatched,
                                   args.pred_ext, args.gt_ext, args.plot_dir)
    except (MapError, uqseg.seg.datasets.MaskFormatError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        raise SystemExit(2) from exc
    print(format_table(results))
    if args.json:
        folder = osp.dirname(osp.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()
