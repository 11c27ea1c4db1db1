"""Fit a temperature on a validation split and write a checkpoint that holds it (segmentors and classifiers).

    uqseg calibrate CONFIG CHECKPOINT [--out CALIBRATED.pth] [--method nll|ece] [--per-class]
                    [--n-bins 15] [--bounds 0.001 1000] [--split val] [--allow-test-split]
                    [--max-pixels 1000000] [--seed 0] [--device cuda|cpu] [--cfg-options ...]
                    [--trust-checkpoint] [--partial-load] [--no-progress]
    uqseg test CONFIG CALIBRATED.pth     # every metric reports the calibrated model

CONFIG is a config file or the name of a shipped one (``uqseg configs list``). The front end is
chosen by the config's ``default_scope``: ``'mmpretrain'`` calibrates a classifier, anything else
(``'mmseg'``, none) a segmentor. ``python tools/calibrate.py`` and ``tools/calibrate_classifier.py``
run this command.

Segmentor: runs the model (its ``test_cfg``: whole or slide inference) over the split's dataloader
and streams the valid pixels' logits into a seeded (``--seed``) uniform subsample of
``--max-pixels``. Classifier: runs the model over the split's dataloader (its raw head scores,
``uqseg.cls.outputs.collect_outputs``; samples of the OOD sets named by the config's
``SelectivePredictionMetric`` are left out); never an EDL head (its outputs are ``log alpha``, not
logits). A progress bar over the batches goes to stderr (``--no-progress``: none), then one line
with the images and their rate. Then ``T`` is fitted (``uqseg.core.temperature.fit_temperature``:
NLL by L-BFGS on log T by default, or ECE, one T or one per class, within ``--bounds``: a warning
line, and ``bound_reached`` in the record, when ``T`` stopped at one), accuracy / ECE
(``--n-bins``) / NLL / Brier before and after are printed, and the calibrated checkpoint is written
(default ``<checkpoint>_calibrated.pth``) with ``temperature`` in its state dict and the fit's
record in ``meta['uqseg_temperature']``, and the record as ``<out>.json``. ``uqseg test`` with the
same config applies it (``TemperatureScaledEncoderDecoder`` / ``TemperatureScaledImageClassifier``;
docs/temperature_scaling.md).

Never the test split: ``--split test`` and a config whose val dataset is one of its test datasets
(mmseg's and mmpretrain's reference configs validate on their test set) are refused unless
``--allow-test-split``; point ``val_dataloader`` at a held-out split with ``--cfg-options``.

CHECKPOINT is loaded as every command loads one (``uqseg.engine.checkpoint``: the allow-list,
``--trust-checkpoint``; keys that do not fit are an error, ``--partial-load``), its
``temperature``, if any, left out (``T`` is fitted anew).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.utils import track_iter_progress
from mmseg.registry import MODELS

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.cli.configs import find_config, read_config
from uqseg.cli.test import is_classifier_config
from uqseg.core.temperature import DEFAULT_BOUNDS, DEFAULT_MAX_SAMPLES, TEMPERATURE_KEY
from uqseg.engine.calibration import SPLITS, calibration_config, fit_calibration, save_calibration
from uqseg.engine.checkpoint import add_checkpoint_arguments, load_checkpoint_strict
from uqseg.optional import installed, require
from uqseg.seg.calibration import collect_pixel_logits
from uqseg.seg.models.segmentors import check_temperature_scalable as check_segmentor_scalable

if installed('mmpretrain'):  # the classification front end (uqseg[cls])
    from uqseg.cls.models.classifiers import check_temperature_scalable as check_classifier_scalable
    from uqseg.cls.outputs import build_classifier, collect_outputs, config_ood_sets, split_ood

__all__ = ['ignore_index_of', 'collect_rate', 'batches', 'calibrate_segmentor', 'calibrate_classifier', 'calibrate']


def ignore_index_of(cfg: Config):
    """The decode head's ``ignore_index`` (an output-layer head's inner head's; mmseg's 255 if unset)."""
    head = cfg.model.get('decode_head', {})
    inner = head.get('head', head)
    return head.get('ignore_index', inner.get('ignore_index', 255))


def collect_rate(source: str, n: int, seconds: float, device: str) -> None:
    """The line that closes the collection stage: images, time and rate."""
    print(f'{source}: ran the model over {n:,} images on {device} in {seconds:.1f} s '
          f'({n / max(seconds, 1e-9):.1f} images/s)', flush=True)


def batches(cfg: Config, args: argparse.Namespace):
    """The batches of the ``args.split`` dataloader (seeded), under a progress bar on stderr unless
    ``--no-progress``; ``(batches, number of images)``."""
    loader = Runner.build_dataloader(cfg[f'{args.split}_dataloader'], seed=args.seed)
    if args.no_progress:
        return loader, len(loader.dataset)
    return track_iter_progress((loader, len(loader)), file=sys.stderr), len(loader.dataset)


def calibrate_segmentor(args: argparse.Namespace, cfg: Config) -> dict:
    """Fit ``T`` of an mmseg segmentor on ``cfg``'s ``args.split`` pixels and save it; the record."""
    source = f'{args.config} ({args.split} split)'
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmseg'):
        model = MODELS.build(cfg.model)
        check_segmentor_scalable(model, args.config)
        load_checkpoint_strict(model, args.checkpoint, strict=not args.partial_load, trust=args.trust_checkpoint,
                               ignore_keys=(TEMPERATURE_KEY,))  # T: fitted anew
        model = model.to(args.device)
        loader, n = batches(cfg, args)
        ignore_index = ignore_index_of(cfg)
        start = time.time()
        sub = collect_pixel_logits(model, loader, args.max_pixels, args.seed, ignore_index)
    collected = time.time() - start
    collect_rate(source, n, collected, args.device)
    if sub.seen == 0:
        raise ValueError(f'{args.config}: the {args.split} split has no valid pixel (empty, or every label is '
                         f'ignore_index={ignore_index}); nothing to fit T on')
    z, y = sub.rows()
    t0 = time.time()
    fit = fit_calibration(args, z, y)
    fitted = time.time() - t0
    where = 'the whole split' if sub.seen <= args.max_pixels else \
        f'a seeded subsample of {z.shape[0]:,} of its {sub.seen:,} pixels'
    return save_calibration(args, fit, z, y, dict(pixels_seen=sub.seen, pixels_used=int(z.shape[0]), seed=args.seed,
                                                  seconds_collect=collected, seconds_fit=fitted),
                            f'{sub.seen:,} valid pixels, scored on {where}; collect {collected:.1f} s, fit '
                            f'{fitted:.2f} s')


def calibrate_classifier(args: argparse.Namespace, cfg: Config) -> dict:
    """Fit ``T`` of an mmpretrain classifier on ``cfg``'s ``args.split`` images (the test metric's
    OOD sets left out) and save it; the record."""
    require('mmpretrain', f'uqseg calibrate {args.config} (a classifier)')
    source = f'{args.config} ({args.split} split)'
    model = build_classifier(cfg, args.checkpoint, args.config, 'uqseg calibrate', strict=not args.partial_load,
                             trust=args.trust_checkpoint, ignore_keys=(TEMPERATURE_KEY,))  # T: fitted anew
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        check_classifier_scalable(model, args.config)
        model = model.to(args.device).eval()
        loader, _ = batches(cfg, args)
        start = time.time()
        z, y, names = collect_outputs(model, loader, False, source)
        collected = time.time() - start
        collect_rate(source, len(names), collected, args.device)
        z, y, _ = split_ood(z, y, names, [s for s in config_ood_sets(cfg) if s in set(names)], source)
    t0 = time.time()
    fit = fit_calibration(args, z, y)
    fitted = time.time() - t0
    return save_calibration(args, fit, z, y, dict(samples=int(z.shape[0]), seconds_collect=collected,
                                                  seconds_fit=fitted),
                            f'{z.shape[0]:,} images; collect {collected:.1f} s, fit {fitted:.2f} s')


def calibrate(args: argparse.Namespace) -> dict:
    """``uqseg calibrate``: the segmentor's or the classifier's fit, by the config's ``default_scope``; the record."""
    cfg = read_config(args.config)
    args.config = find_config(args.config)
    cfg = calibration_config(args, cfg)  # the checkpoint exists, the bounds are valid, not the test split
    record = (calibrate_classifier if is_classifier_config(cfg) else calibrate_segmentor)(args, cfg)
    print(f'test with: uqseg test {args.config} {record["out"]}')
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('config', help='config file, or the name of a shipped config (uqseg configs list)')
    parser.add_argument('checkpoint', help='the trained checkpoint')
    parser.add_argument('--out', help='calibrated checkpoint (default: <checkpoint>_calibrated.pth)')
    parser.add_argument('--method', choices=('nll', 'ece'), default='nll', help='the objective of the fit (nll)')
    parser.add_argument('--per-class', action='store_true', help='one temperature per class (NLL only)')
    parser.add_argument('--n-bins', type=int, default=15, help='ECE bins (report, and the ECE fit)')
    parser.add_argument('--bounds', type=float, nargs=2, metavar=('LO', 'HI'), default=list(DEFAULT_BOUNDS),
                        help=f'the range T is fitted in (default {DEFAULT_BOUNDS[0]:g} {DEFAULT_BOUNDS[1]:g}); '
                        'reaching one is reported')
    parser.add_argument('--split', choices=SPLITS, default='val', help="the config's dataloader to fit on (val)")
    parser.add_argument('--allow-test-split', action='store_true', help='fit on a test split anyway')
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_SAMPLES,
                        help=f'segmentors: valid pixels the fit uses at most (seeded uniform subsample; '
                        f'{DEFAULT_MAX_SAMPLES:,})')
    parser.add_argument('--seed', type=int, default=0, help='seed of the dataloader and the pixel subsample (0)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='where the model runs (cuda when available, else cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override settings of the config, key=value')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar (on stderr) over the batches')
    add_checkpoint_arguments(parser)  # --trust-checkpoint, --partial-load


def run(args: argparse.Namespace) -> dict:
    """Calibrate; the fit's record (``out``: the calibrated checkpoint)."""
    return calibrate(args)
