"""Fit a temperature on a validation split and write a checkpoint that holds it.

    python tools/calibrate.py CONFIG CHECKPOINT [--out CALIBRATED.pth] [--method nll|ece]
        [--per-class] [--bounds 0.001 1000] [--max-pixels 1000000] [--seed 0] [--split val]
        [--cfg-options ...]
    python tools/test.py CONFIG CALIBRATED.pth     # every metric reports the calibrated model

Runs the model (its ``test_cfg``: whole or slide inference) over the config's ``val_dataloader``,
streams the valid pixels' logits into a seeded uniform subsample of ``--max-pixels``, fits ``T``
(``uqseg.core.temperature.fit_temperature``: NLL by L-BFGS on log T by default, or ECE, one T or
one per class, within ``--bounds``: a warning line, and ``bound_reached`` in the record, when ``T``
stopped at one), prints accuracy / ECE (15 bins) / NLL / Brier before and after on that subsample
(the whole split when it has fewer pixels), and writes CHECKPOINT with ``temperature`` in its
state dict and the fit's record in ``meta['uqseg_temperature']`` (default
``<checkpoint>_calibrated.pth``) and the record as ``<out>.json``. ``tools/test.py`` with the same
config applies it (``TemperatureScaledEncoderDecoder``; docs/temperature_scaling.md).

Never the test split: ``--split test`` and a config whose val dataset is one of its test datasets
(mmseg's reference configs validate on their test set) are refused unless ``--allow-test-split``;
point ``val_dataloader`` at a held-out split with ``--cfg-options``.

CHECKPOINT is loaded as every tool loads one (``uqseg.engine.checkpoint``: the allow-list,
``--trust-checkpoint``; keys that do not fit are an error, ``--partial-load``), its
``temperature``, if any, left out (``T`` is fitted anew).
"""
import time

import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.core.temperature import DEFAULT_MAX_SAMPLES, TEMPERATURE_KEY
from uqseg.engine.calibration import calibration_config, calibration_parser, fit_calibration, save_calibration
from uqseg.engine.checkpoint import load_checkpoint_strict
from uqseg.seg.calibration import collect_pixel_logits
from uqseg.seg.models.segmentors import check_temperature_scalable


def parse_args(argv=None):
    parser = calibration_parser(__doc__.splitlines()[0])
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_SAMPLES,
                        help=f'valid pixels the fit uses at most (seeded uniform subsample; {DEFAULT_MAX_SAMPLES})')
    parser.add_argument('--seed', type=int, default=0, help='seed of the subsample')
    return parser.parse_args(argv)


def ignore_index_of(cfg):
    head = cfg.model.get('decode_head', {})
    inner = head.get('head', head)
    return head.get('ignore_index', inner.get('ignore_index', 255))


def main(argv=None):
    args = parse_args(argv)
    cfg = calibration_config(args)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    check_temperature_scalable(model, args.config)
    load_checkpoint_strict(model, args.checkpoint, strict=not args.partial_load, trust=args.trust_checkpoint,
                           ignore_keys=(TEMPERATURE_KEY,))  # T: fitted anew
    if torch.cuda.is_available():
        model = model.cuda()
    loader = Runner.build_dataloader(cfg[f'{args.split}_dataloader'], seed=args.seed)
    start = time.time()
    ignore_index = ignore_index_of(cfg)
    sub = collect_pixel_logits(model, loader, args.max_pixels, args.seed, ignore_index)
    z, y = sub.rows()
    collected = time.time() - start
    if sub.seen == 0:
        raise ValueError(f'{args.config}: the {args.split} split has no valid pixel (empty, or every label is '
                         f'ignore_index={ignore_index}); nothing to fit T on')
    t0 = time.time()
    fit = fit_calibration(args, z, y)
    fitted = time.time() - t0
    where = 'the whole split' if sub.seen <= args.max_pixels else \
        f'a seeded subsample of {z.shape[0]:,} of its {sub.seen:,} pixels'
    record = save_calibration(args, fit, z, y, dict(pixels_seen=sub.seen, pixels_used=int(z.shape[0]), seed=args.seed,
                                                  seconds_collect=collected, seconds_fit=fitted),
                              f'{sub.seen:,} valid pixels, scored on {where}; collect {collected:.1f} s, fit '
                              f'{fitted:.2f} s')
    print(f'test with: python tools/test.py {args.config} {record["out"]}')
    return record


if __name__ == '__main__':
    main()
