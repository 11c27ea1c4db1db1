"""Fit a classifier's temperature on a validation split and write a checkpoint that holds it.

    python tools/calibrate_classifier.py CONFIG CHECKPOINT [--out CALIBRATED.pth] [--method nll|ece]
        [--per-class] [--n-bins 15] [--bounds 0.001 1000] [--split val] [--cfg-options ...]
    python tools/test.py CONFIG CALIBRATED.pth --cfg-options model.type=TemperatureScaledImageClassifier

The mmpretrain counterpart of ``tools/calibrate.py``: runs the model over the config's
``val_dataloader`` (its raw head scores, ``uqseg.cls.outputs.collect_outputs``; samples of the OOD
sets named by the config's ``SelectivePredictionMetric`` are left out), fits ``T``
(``uqseg.core.temperature.fit_temperature``: NLL by L-BFGS on log T by default, or ECE; one T or
one per class, within ``--bounds``, a reached bound warned about and recorded), prints accuracy /
ECE / NLL / Brier before and after, and writes CHECKPOINT with
``temperature`` in its state dict and the fit's record in ``meta['uqseg_temperature']`` (default
``<checkpoint>_calibrated.pth``) and the record as ``<out>.json``. A
``TemperatureScaledImageClassifier`` (or ``LDLImageClassifier``) loading it applies ``T``.
Never the test split (``uqseg.engine.calibration.check_calibration_split``), and never an EDL
head (its outputs are ``log alpha``, not logits). CHECKPOINT is loaded as every tool loads one
(``uqseg.engine.checkpoint``: the allow-list, ``--trust-checkpoint``; keys that do not fit are an
error, ``--partial-load``), its ``temperature``, if any, left out (``T`` is fitted anew).
"""
import time

import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.cls.models.classifiers import check_temperature_scalable
from uqseg.cls.outputs import build_classifier, collect_outputs, config_ood_sets, split_ood
from uqseg.core.temperature import TEMPERATURE_KEY
from uqseg.engine.calibration import calibration_config, calibration_parser, fit_calibration, save_calibration


def parse_args(argv=None):
    parser = calibration_parser(__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = calibration_config(args)
    model = build_classifier(cfg, args.checkpoint, args.config, 'calibrate_classifier.py', strict=not args.partial_load,
                             trust=args.trust_checkpoint, ignore_keys=(TEMPERATURE_KEY,))  # T: fitted anew
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        check_temperature_scalable(model, args.config)
        model = model.to(args.device).eval()
        start = time.time()
        loader = Runner.build_dataloader(cfg[f'{args.split}_dataloader'])
        source = f'{args.config} ({args.split} split)'
        z, y, names = collect_outputs(model, loader, False, source)
        z, y, _ = split_ood(z, y, names, [s for s in config_ood_sets(cfg) if s in set(names)], source)
    collected = time.time() - start
    t0 = time.time()
    fit = fit_calibration(args, z, y)
    fitted = time.time() - t0
    record = save_calibration(args, fit, z, y, dict(samples=int(z.shape[0]), seconds_collect=collected,
                                                  seconds_fit=fitted),
                              f'{z.shape[0]:,} images; collect {collected:.1f} s, fit {fitted:.2f} s')
    print('a TemperatureScaledImageClassifier (or LDLImageClassifier) loading it applies T')
    return record


if __name__ == '__main__':
    main()
