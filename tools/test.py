"""Test (and evaluate) a checkpoint: mmseg's tools/test.py, with ``import uqseg``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR] [--show-dir DIR]
    bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [...]

The metrics are logged and also written to ``<work_dir>/test_metrics.json``. ``--out DIR`` saves
every prediction as a uint8 PNG of the foreground probability (binary heads; ``round(255 p)``)
or of the predicted class (multi-class heads) under ``DIR/<set name>/``, the form in which SOD
papers publish their maps, and beside each the map of the model's own uncertainty score as
float32 ``<image name>_<score>.npy`` (EDL ``vacuity``, DisMax ``MMLES``, IsoMax+ ``MDS``; none for a
plain head); ``--out-scores NAME ...`` chooses the scores (any of ``uqseg.core.scores.SCORES``
the head has, e.g. ``max-prob entropy vacuity``). ``--show-dir DIR`` draws *every* test image with its ground truth and
prediction (mmseg's ``SegVisualizationHook`` at interval 1; its default, 50, drew every 50th
batch only) to ``DIR/vis_data/vis_image/test_<image name>_0.png``, and says so at the end.

A checkpoint written by ``tools/calibrate.py`` holds a temperature ``T``: the model is then tested
as ``TemperatureScaledEncoderDecoder`` with that ``T`` (the config unchanged otherwise), so every
metric reports the calibrated model; a config with ``temperature=None`` refuses a checkpoint
without one. ``--tta`` uses ``MeanProbabilitySegTTAModel`` for mmseg's ``SegTTAModel`` (its
``seg_logits`` is the merged distribution the metrics then score).

The checkpoint is loaded safely and strictly (``uqseg.engine.checkpoint``, ``SafeCheckpointRunner``):
``torch.load(weights_only=True)`` with the allow-list of the types mmengine / uqseg checkpoints
hold (``--trust-checkpoint`` for a file you trust that holds others), and a checkpoint that does
not fit the config (missing, unexpected or mis-shaped keys) is an error naming them
(``--partial-load`` tests the partly loaded model anyway, with a warning).
"""
import argparse
import json
import os
import os.path as osp
import time

from mmengine.config import Config, DictAction

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.compat import init_cpu_distributed
from uqseg.engine.checkpoint import SafeCheckpointRunner, add_checkpoint_arguments
from uqseg.seg.calibration import checkpoint_temperature, temperature_scaled_model_cfg


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='MMSeg test (and eval) a model, with uqseg')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for logs and test_metrics.json')
    parser.add_argument('--out', type=str, help='directory to save prediction maps (PNG) for offline evaluation')
    parser.add_argument('--out-scores', nargs='+', metavar='SCORE',
                        help="with --out: the scores whose maps to write (default: the head's own score)")
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='draw every test image (ground truth beside prediction) into '
                        'SHOW_DIR/vis_data/vis_image/')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (see mmseg)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--tta', action='store_true', help='test time augmentation')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_checkpoint_arguments(parser)
    args = parser.parse_args(argv)
    if args.out_scores and not args.out:
        parser.error('--out-scores needs --out DIR')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError('--show/--show-dir need a visualization hook in default_hooks: '
                           "visualization=dict(type='SegVisualizationHook')")
    hook = default_hooks['visualization']
    hook['draw'] = True
    hook['interval'] = 1  # every image: mmseg's default (50) draws one batch in 50
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = osp.abspath(args.show_dir)
        # a visualizer of its own: mmseg's configs name theirs 'visualizer', and mmengine hands an
        # existing instance of that name (e.g. a training run's, with its save_dir) back instead
        cfg.visualizer['name'] = f'uqseg_show_dir_{time.time_ns()}'
    return cfg


def show_dir_images(show_dir: str) -> str:
    """The folder mmengine's LocalVisBackend writes the pictures of ``--show-dir`` into."""
    return osp.join(osp.abspath(show_dir), 'vis_data', 'vis_image')


def apply_checkpoint_temperature(cfg, config: str, checkpoint: str, trust: bool = False) -> None:
    """Test a checkpoint that holds ``T`` as a temperature-scaled model; refuse one without ``T``
    when the config requires it (``temperature=None``). ``trust``: ``--trust-checkpoint``."""
    t = checkpoint_temperature(checkpoint, trust=trust)
    if t is not None:
        cfg.model = temperature_scaled_model_cfg(cfg.model, config)
        print(f'{checkpoint}: temperature {t.tolist()} (tools/calibrate.py) applied to the logits', flush=True)
    elif 'temperature' in cfg.model and cfg.model.temperature is None:
        raise ValueError(f'{checkpoint} holds no temperature, which {config} requires (model.temperature=None): '
                         'write one with tools/calibrate.py CONFIG CHECKPOINT')


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    apply_checkpoint_temperature(cfg, args.config, args.checkpoint, args.trust_checkpoint)
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        if cfg.tta_model.get('type') == 'SegTTAModel':
            cfg.tta_model.type = 'MeanProbabilitySegTTAModel'
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(type='SavePredictionMapsHook', out_dir=args.out, scores=args.out_scores)]
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = build_cfg(args)
    init_cpu_distributed(cfg)
    runner = SafeCheckpointRunner.from_cfg(cfg)
    runner.trust_checkpoint, runner.strict_load = args.trust_checkpoint, not args.partial_load
    metrics = runner.test()
    if runner.rank == 0:
        path = osp.join(cfg.work_dir, 'test_metrics.json')
        with open(path, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=1)
        if args.show_dir:
            folder = show_dir_images(args.show_dir)
            n = len([f for f in os.listdir(folder) if f.endswith('.png')]) if osp.isdir(folder) else 0
            print(f'--show-dir: {n} pictures (ground truth and prediction) in {folder}', flush=True)
    return metrics


if __name__ == '__main__':
    main()
