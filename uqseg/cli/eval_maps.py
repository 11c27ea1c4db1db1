"""Score saved saliency maps (PNG folders, as SOD papers publish them) against ground-truth masks.

    uqseg eval-maps --pred DIR --gt DIR [--set-name X] [--n-bins 10] [--confidence top-label|positive]
                    [--hist-bins 10000] [--no-sod] [--resize-pred] [--allow-unmatched]
                    [--pred-ext .png] [--gt-ext .png] [--plot-dir DIR] [--json out.json] [--no-progress]

Prediction maps: 8-bit grey PNGs whose value v is the foreground probability v / 255 (what
``uqseg test --out`` writes). Ground truth: 0-255 saliency masks, thresholded at 128 and checked
like ``LoadSaliencyMask``. Files are matched by name without suffix; unmatched names, unreadable
files and size mismatches are errors (--allow-unmatched, --resize-pred relax the first and last).

The maps go through the same metric classes as ``uqseg test`` (PixelCalibrationMetric,
PixelUncertaintyMetric, SODMetric), fed as a binary head's output would be: the metric sees
p = v / 255 as float32. Printed as a table; --json also writes {"<set>/<key>": value}.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import os.path as osp

from mmengine.logging import MMLogger

from uqseg.seg.saved_maps import evaluate_folders


def format_table(results: dict[str, float]) -> str:
    """The results as a two-column text table (``nan`` for undefined values)."""
    width = max(len(k) for k in results) + 2
    lines = [f'{"metric":<{width}}{"value":>12}', '-' * (width + 12)]
    for k, v in results.items():
        lines.append(f'{k:<{width}}{v:>12.6f}' if not math.isnan(v) else f'{k:<{width}}{"nan":>12}')
    return '\n'.join(lines)


def write_json(results: dict[str, float], path: str) -> None:
    """``results`` as JSON in ``path`` (its folder made if missing)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)


class _QuietPrefixWarning(logging.Filter):
    """Drop mmengine's "prefix is not set" notice: the keys carry the set name instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return 'prefix is not set' not in record.getMessage()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--pred', required=True, metavar='DIR',
                   help='folder of predicted maps (8-bit PNG, v/255 = P(foreground))')
    p.add_argument('--gt', required=True, metavar='DIR',
                   help='folder of ground-truth masks (0-255, thresholded at 128)')
    p.add_argument('--set-name', metavar='NAME', help='name used in the metric keys (default: the --pred folder name)')
    p.add_argument('--n-bins', type=int, metavar='N', default=10, help='calibration bins (default 10)')
    p.add_argument('--confidence', choices=['top-label', 'positive'], default='top-label',
                   help='calibration confidence: max(p, 1-p) (default) or p of the foreground')
    p.add_argument('--hist-bins', type=int, metavar='N', default=10000,
                   help='histogram bins of the AURC/AUROC metrics (default 10000)')
    p.add_argument('--no-sod', action='store_true', help='skip the SOD metrics (MAE, F, S, E)')
    p.add_argument('--resize-pred', action='store_true',
                   help='resize predictions to the mask size (bilinear) instead of failing on a mismatch')
    p.add_argument('--allow-unmatched', action='store_true',
                   help='score the names present in both folders instead of failing on unmatched files')
    p.add_argument('--pred-ext', metavar='SUFFIX', default='.png', help='suffix of the prediction files (default .png)')
    p.add_argument('--gt-ext', metavar='SUFFIX', default='.png', help='suffix of the ground-truth files (default .png)')
    p.add_argument('--plot-dir', metavar='DIR', help='also write a reliability diagram and a risk-coverage curve here')
    p.add_argument('--json', metavar='FILE', help='write the results to this JSON file')
    p.add_argument('--no-progress', action='store_true', help='no progress bar (on stderr) over the maps')


def run(args: argparse.Namespace) -> dict[str, float]:
    logger = MMLogger.get_current_instance()
    if not any(isinstance(f, _QuietPrefixWarning) for f in logger.filters):
        logger.addFilter(_QuietPrefixWarning())
    results = evaluate_folders(args.pred, args.gt, args.set_name, args.n_bins, args.confidence, args.hist_bins,
                               not args.no_sod, args.resize_pred, args.allow_unmatched, args.pred_ext,
                               args.gt_ext, args.plot_dir, progress=not args.no_progress)
    print(format_table(results))
    if args.json:
        write_json(results, args.json)
    return results
