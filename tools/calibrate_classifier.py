"""Fit a classifier's temperature on a validation split and write a checkpoint that holds it.

    python tools/calibrate_classifier.py CONFIG CHECKPOINT [--out CALIBRATED.pth] [--method nll|ece]
        [--per-class] [--n-bins 15] [--split val] [--cfg-options ...]
    python tools/test.py CONFIG CALIBRATED.pth --cfg-options model.type=TemperatureScaledImageClassifier

The mmpretrain counterpart of ``tools/calibrate.py``: runs the model over the config's
``val_dataloader`` (its raw head scores, ``uqseg.cls.outputs.collect_outputs``; samples of the OOD
sets named by the config's ``SelectivePredictionMetric`` are left out), fits ``T``
(``uqseg.core.temperature.fit_temperature``: NLL by L-BFGS on log T by default, or ECE; one T or
one per class), prints accuracy / ECE / NLL / Brier before and after, and writes CHECKPOINT with
``temperature`` in its state dict and the fit's record in ``meta['uqseg_temperature']`` (default
``<checkpoint>_calibrated.pth``) and the record as ``<out>.json``. A
``TemperatureScaledImageClassifier`` (or ``LDLImageClassifier``) loading it applies ``T``.
Never the test split (``uqseg.engine.calibration.check_calibration_split``), and never an EDL
head (its outputs are ``log alpha``, not logits).
"""
import argparse
import json
import os
import os.path as osp
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint
from mmpretrain.registry import MODELS

import uqseg  # noqa: F401  (registers uqseg components, applies uqseg.compat)
from uqseg.cls.models.classifiers import check_temperature_scalable
from uqseg.cls.outputs import collect_outputs, config_ood_sets, split_ood
from uqseg.core.temperature import calibration_summary, fit_temperature
from uqseg.engine.calibration import META_KEY, check_calibration_split, write_calibrated_checkpoint

SPLITS = ('val', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', help='calibrated checkpoint (default: <checkpoint>_calibrated.pth)')
    parser.add_argument('--method', choices=('nll', 'ece'), default='nll')
    parser.add_argument('--per-class', action='store_true', help='one temperature per class (NLL only)')
    parser.add_argument('--n-bins', type=int, default=15, help='ECE bins (report, and the ECE fit)')
    parser.add_argument('--split', choices=SPLITS, default='val', help="the config's dataloader to fit on")
    parser.add_argument('--allow-test-split', action='store_true', help='fit on a test split anyway')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope') or 'mmpretrain'
    if scope != 'mmpretrain':
        raise ValueError(f'{args.config}: default_scope {scope!r}; calibrate_classifier.py calibrates mmpretrain '
                         'classifiers (tools/calibrate.py: mmseg models)')
    check_calibration_split(cfg, args.split, args.allow_test_split, args.config)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner merges it
        model_cfg.setdefault('data_preprocessor', dict(cfg.data_preprocessor))
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
        load_checkpoint(model, args.checkpoint, map_location='cpu')
        check_temperature_scalable(model, args.config)
        model = model.to(args.device).eval()
        start = time.time()
        loader = Runner.build_dataloader(cfg[f'{args.split}_dataloader'])
        source = f'{args.config} ({args.split} split)'
        z, y, names = collect_outputs(model, loader, False, source)
        z, y, _ = split_ood(z, y, names, [s for s in config_ood_sets(cfg) if s in set(names)], source)
    collected = time.time() - start
    t0 = time.time()
    t = fit_temperature(z, y, method=args.method, per_class=args.per_class, max_samples=None, n_bins=args.n_bins)
    fitted = time.time() - t0
    before, after = calibration_summary(z, y, 1.0, args.n_bins), calibration_summary(z, y, t, args.n_bins)
    record = dict(method=args.method, per_class=args.per_class, split=args.split, config=args.config,
                  samples=int(z.shape[0]), n_bins=args.n_bins, before=before, after=after,
                  seconds_collect=collected, seconds_fit=fitted)
    dst = args.out or osp.splitext(args.checkpoint)[0] + '_calibrated.pth'
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    write_calibrated_checkpoint(args.checkpoint, dst, t, record)
    record['temperature'] = t.tolist()
    with open(osp.splitext(dst)[0] + '.json', 'w') as f:
        json.dump(record, f, indent=1)
    tv = t.tolist()
    shown = f'{tv:.4f}' if isinstance(tv, float) else '[' + ', '.join(f'{v:.3f}' for v in tv) + ']'
    print(f'T = {shown} ({args.method}, fitted on the {args.split} split: {z.shape[0]:,} images; collect '
          f'{collected:.1f} s, fit {fitted:.2f} s)')
    print(f'{"":8}' + ''.join(f'{k:>10}' for k in before))
    for name, vals in (('before', before), ('after', after)):
        print(f'{name:8}' + ''.join(f'{v:>10.4f}' for v in vals.values()))
    print(f'wrote {dst} (meta[{META_KEY!r}]); a TemperatureScaledImageClassifier loading it applies T')
    return record


if __name__ == '__main__':
    main()
