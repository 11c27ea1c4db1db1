"""Test (and evaluate) a checkpoint of a segmentor or classifier: mmseg's tools/test.py with uqseg's components.

    uqseg test CONFIG [CHECKPOINT] [--work-dir DIR] [--out DIR [--out-scores SCORE ...]] [--show-dir DIR]
               [--show] [--tta] [--cfg-options KEY=VALUE ...] [--launcher ...]
               [--trust-checkpoint] [--partial-load]
    python tools/test.py CONFIG [CHECKPOINT] [...]          # the same
    bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [...]    # torchrun, --launcher pytorch

CONFIG is a config file or the name of a shipped one (``uqseg configs list``). CHECKPOINT is needed
except for an ensemble config (``EnsembleSegmentor`` / ``EnsembleClassifier``: its members name
their checkpoints; ``--trust-checkpoint`` applies to them). The metrics are
logged and also written to ``<work_dir>/test_metrics.json`` (work dir: ``--work-dir``, else the
config's, else ``./work_dirs/<config name>``). ``--out DIR`` saves every prediction as a uint8 PNG
of the foreground probability (binary heads; ``round(255 p)``) or of the predicted class
(multi-class heads) under ``DIR/<set name>/``, the form in which SOD papers publish their maps,
and beside each the map of the model's own uncertainty score as float32
``<image name>_<score>.npy`` (EDL ``vacuity``, DisMax ``MMLES``, IsoMax+ ``MDS``, the
``mutual-information`` of an ensemble, MC dropout or TTA; none for a plain head);
``--out-scores NAME ...`` chooses the scores (any of ``uqseg.core.scores.SCORES`` the head has,
e.g. ``max-prob entropy vacuity``, and of several members ``uqseg.core.scores.MEMBER_SCORES``).
``--show-dir DIR`` draws *every* test image with its
ground truth and prediction (mmseg's ``SegVisualizationHook`` at interval 1; its default, 50,
drew every 50th batch only) to ``DIR/vis_data/vis_image/test_<image name>_0.png``, and says so at
the end.

A checkpoint written by ``uqseg calibrate`` holds a temperature ``T``: the model is then tested as
``TemperatureScaledEncoderDecoder`` with that ``T`` (the config unchanged otherwise), so every
metric reports the calibrated model; a config with ``temperature=None`` refuses a checkpoint
without one. ``--tta`` uses ``MeanProbabilitySegTTAModel`` for mmseg's ``SegTTAModel`` (its
``seg_logits`` is the merged distribution the metrics then score, and whose views are members: the
mutual information of the views is a score); it wraps ensembles and MC dropout too (their views'
samples are their mixtures). The scores of several members (``mutual-information``,
``expected-entropy``, ``class-variance``, ``disagreement``) are the own score of an ensemble, MC
dropout or TTA and can be written with ``--out-scores``. An mmpretrain config
(``default_scope='mmpretrain'``) runs mmpretrain's test loop and metrics, a calibrated ``T``
applied by ``TemperatureScaledImageClassifier`` (what an ``ImageClassifier`` becomes); ``--out``
is for segmentors only.

The checkpoint is loaded safely and strictly (``uqseg.engine.checkpoint``, ``SafeCheckpointRunner``):
``torch.load(weights_only=True)`` with the allow-list of the types mmengine / uqseg checkpoints
hold (``--trust-checkpoint`` for a file you trust that holds others), and a checkpoint that does
not fit the config (missing, unexpected or mis-shaped keys) is an error naming them
(``--partial-load`` tests the partly loaded model anyway, with a warning).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
import time

from mmengine.config import Config

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.cli.configs import find_config, read_config
from uqseg.cli.train import add_launcher_arguments, set_local_rank, set_work_dir
from uqseg.compat import init_cpu_distributed
from uqseg.engine.checkpoint import SafeCheckpointRunner, add_checkpoint_arguments
from uqseg.seg.calibration import checkpoint_temperature, temperature_scaled_model_cfg

__all__ = ['METRICS_FILE', 'ENSEMBLE_TYPES', 'is_ensemble_config', 'is_classifier_config', 'trigger_visualization_hook',
           'show_dir_images',
           'classifier_temperature_cfg', 'apply_checkpoint_temperature', 'build_test_config', 'set_test_pipeline',
           'write_metrics',
           'run_test_loop']

#: the file in the work dir that holds the test metrics
METRICS_FILE = 'test_metrics.json'
#: model types whose members name their own checkpoints (the command takes none)
ENSEMBLE_TYPES = ('EnsembleSegmentor', 'EnsembleClassifier')


def is_ensemble_config(cfg: Config) -> bool:
    """Whether ``cfg``'s model is an ensemble (:data:`ENSEMBLE_TYPES`), tested without a CHECKPOINT."""
    return (cfg.get('model') or {}).get('type') in ENSEMBLE_TYPES


def is_classifier_config(cfg: Config) -> bool:
    """Whether ``cfg`` is an mmpretrain (classification) config: its ``default_scope`` is
    ``'mmpretrain'``; anything else (``'mmseg'``, none) is a segmentation config."""
    return cfg.get('default_scope') == 'mmpretrain'


def trigger_visualization_hook(cfg: Config, show: bool = False, show_dir=None, wait_time: float = 2) -> Config:
    """Draw every test image (``--show`` / ``--show-dir``) with the config's visualization hook."""
    default_hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in default_hooks:
        raise KeyError('--show/--show-dir need a visualization hook in default_hooks: '
                       "visualization=dict(type='SegVisualizationHook')")
    hook = default_hooks['visualization']
    hook['draw'] = True
    hook['interval'] = 1  # every image: mmseg's default (50) draws one batch in 50
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        cfg.visualizer['save_dir'] = osp.abspath(show_dir)
        # a visualizer of its own: mmseg's configs name theirs 'visualizer', and mmengine hands an
        # existing instance of that name (e.g. a training run's, with its save_dir) back instead
        cfg.visualizer['name'] = f'uqseg_show_dir_{time.time_ns()}'
    return cfg


def show_dir_images(show_dir: str) -> str:
    """The folder mmengine's LocalVisBackend writes the pictures of ``--show-dir`` into."""
    return osp.join(osp.abspath(show_dir), 'vis_data', 'vis_image')


def classifier_temperature_cfg(model_cfg) -> dict:
    """A copy of an mmpretrain model config that applies a checkpoint's ``T``: ``ImageClassifier``
    becomes ``TemperatureScaledImageClassifier(temperature=None)``; other types (a
    ``TemperatureScaledImageClassifier``, ``LDLImageClassifier``) load ``T`` themselves and stay."""
    cfg = copy.deepcopy(model_cfg)
    if cfg.get('type') == 'ImageClassifier':
        cfg['type'] = 'TemperatureScaledImageClassifier'
        cfg['temperature'] = None
    return cfg


def apply_checkpoint_temperature(cfg: Config, config: str, checkpoint: str, trust: bool = False) -> None:
    """Test a checkpoint that holds ``T`` as a temperature-scaled segmentor or classifier; refuse one
    without ``T`` when the config requires it (``temperature=None``). ``trust``: ``--trust-checkpoint``."""
    t = checkpoint_temperature(checkpoint, trust=trust)
    if t is not None:
        cfg.model = classifier_temperature_cfg(cfg.model) if is_classifier_config(cfg) else \
            temperature_scaled_model_cfg(cfg.model, config)
        print(f'{checkpoint}: temperature {t.tolist()} (uqseg calibrate) applied to the logits', flush=True)
    elif 'temperature' in cfg.model and cfg.model.temperature is None:
        raise ValueError(f'{checkpoint} holds no temperature, which {config} requires (model.temperature=None): '
                         'write one with uqseg calibrate CONFIG CHECKPOINT')


def set_test_pipeline(dataset: dict, pipeline: list) -> None:
    """Give a test dataset config ``pipeline``: every dataset of a ``ConcatDataset`` (the shapes and
    SOD demos test several sets), else the dataset itself."""
    if 'datasets' in dataset:
        for ds in dataset['datasets']:
            set_test_pipeline(ds, pipeline)
    else:
        dataset['pipeline'] = copy.deepcopy(pipeline)


def build_test_config(args: argparse.Namespace) -> Config:
    """The test config of ``args`` (the options of ``uqseg test``) after checking that the checkpoint
    exists (none is needed for an ensemble config, whose members name theirs)."""
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = read_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    ensemble = is_ensemble_config(cfg)
    if args.checkpoint is None and not ensemble:
        raise ValueError(f'{args.config}: CHECKPOINT is missing; only an ensemble config '
                         f'(model.type one of {ENSEMBLE_TYPES}) is tested without one')
    if ensemble and args.trust_checkpoint:
        cfg.model.trust_checkpoint = True
    set_work_dir(cfg, args.work_dir, find_config(args.config))
    cfg.load_from = args.checkpoint
    classifier = is_classifier_config(cfg)
    if classifier and args.out is not None:
        raise ValueError(f'{args.config}: --out writes segmentation maps; this is an mmpretrain config')
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args.show, args.show_dir, args.wait_time)
    if args.checkpoint is not None:
        apply_checkpoint_temperature(cfg, args.config, args.checkpoint, args.trust_checkpoint)
    if args.tta:
        for key in ('tta_pipeline', 'tta_model'):
            if cfg.get(key) is None:
                raise KeyError(f'{args.config}: --tta needs {key} in the config')
        set_test_pipeline(cfg.test_dataloader.dataset, cfg.tta_pipeline)
        if cfg.tta_model.get('type') == 'SegTTAModel':
            cfg.tta_model.type = 'MeanProbabilitySegTTAModel'
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(type='SavePredictionMapsHook', out_dir=args.out, scores=args.out_scores)]
    return cfg


def write_metrics(metrics: dict, work_dir: str) -> str:
    """``<work_dir>/test_metrics.json`` (every value a float); its path."""
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, METRICS_FILE)
    with open(path, 'w') as f:
        json.dump({k: float(v) for k, v in metrics.items()}, f, indent=1)
    return path


def run_test_loop(cfg: Config, trust_checkpoint: bool = False, partial_load: bool = False, show_dir=None) -> dict:
    """Run ``cfg``'s test loop on its ``load_from`` (strictly unless ``partial_load``); the metrics,
    also written to ``test_metrics.json`` by rank 0."""
    init_cpu_distributed(cfg)
    runner = SafeCheckpointRunner.from_cfg(cfg)
    runner.trust_checkpoint, runner.strict_load = trust_checkpoint, not partial_load
    metrics = runner.test()
    if runner.rank == 0:
        path = write_metrics(metrics, cfg.work_dir)
        print(f'metrics in {path}', flush=True)
        if show_dir:
            folder = show_dir_images(show_dir)
            n = len([f for f in os.listdir(folder) if f.endswith('.png')]) if osp.isdir(folder) else 0
            print(f'--show-dir: {n} pictures (ground truth and prediction) in {folder}', flush=True)
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('config', help='config file, or the name of a shipped config (uqseg configs list)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (none for an ensemble config)')
    parser.add_argument('--work-dir', help='the folder for logs and test_metrics.json')
    parser.add_argument('--out', help='folder to save the prediction maps (PNG) and score maps (.npy) into')
    parser.add_argument('--out-scores', nargs='+', metavar='SCORE',
                        help="with --out: the scores whose maps to write (default: the head's own score)")
    parser.add_argument('--show', action='store_true', help='show the prediction of every image in a window')
    parser.add_argument('--show-dir', help='draw every test image (ground truth beside prediction) into '
                        'SHOW_DIR/vis_data/vis_image/')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each --show picture stays')
    parser.add_argument('--tta', action='store_true', help="test-time augmentation (the config's tta_model)")
    add_launcher_arguments(parser)
    add_checkpoint_arguments(parser)


def run(args: argparse.Namespace) -> dict:
    """Test; the metrics."""
    if args.out_scores and not args.out:
        raise ValueError('--out-scores needs --out DIR')
    set_local_rank(args.local_rank)
    cfg = build_test_config(args)
    return run_test_loop(cfg, args.trust_checkpoint, args.partial_load, args.show_dir)
