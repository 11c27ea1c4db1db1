"""Train a segmentor (mmseg config) or a classifier (mmpretrain config) with uqseg's components.

    uqseg train CONFIG [--work-dir DIR] [--resume] [--amp] [--cfg-options KEY=VALUE ...]
                [--launcher {none,pytorch,slurm,mpi}] [--trust-checkpoint]
    python tools/train.py CONFIG [...]            # the same (mmseg's / mmpretrain's tools/train.py)
    bash tools/dist_train.sh CONFIG GPUS [...]    # torchrun, --launcher pytorch

CONFIG is a config file or the name of a shipped one (``aslp_sod_demo``, ``cls/ce_fmnist_demo``:
``uqseg configs list``). mmengine's Runner builds everything in the config's ``default_scope``
(``mmseg`` or ``mmpretrain``). The work dir is ``--work-dir``, else the config's ``work_dir``, else
``./work_dirs/<config name>``. ``--amp`` turns an ``OptimWrapper`` into mmengine's
``AmpOptimWrapper`` (dynamic loss scale).

Checkpoints (``--resume``, ``load_from``) load through ``SafeCheckpointRunner``
(``uqseg.engine.checkpoint``): ``torch.load(weights_only=True)`` with the allow-list of the types
mmengine / uqseg checkpoints hold (``--trust-checkpoint`` for a file you trust that holds others);
a resumed checkpoint must fit the model, ``load_from`` may load part of it (mmengine's
fine-tuning load, the keys that did not fit named in a warning). A config with its own
``runner_type`` runs that runner, its loads inside the allow-list.
"""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.cli.configs import find_config, read_config
from uqseg.compat import init_cpu_distributed
from uqseg.engine.checkpoint import SafeCheckpointRunner, add_checkpoint_arguments, checkpoint_safe_globals

__all__ = ['LAUNCHERS', 'add_launcher_arguments', 'set_local_rank', 'default_work_dir', 'set_work_dir',
           'enable_amp', 'build_train_config', 'train']

#: mmengine's job launchers (``--launcher``)
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank``, as mmseg's train and test tools have them."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override settings of the config, key=value (see mmengine)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local-rank', '--local_rank', dest='local_rank', type=int, default=0,
                        help='the process rank on its machine (torchrun sets LOCAL_RANK instead)')


def set_local_rank(local_rank: int) -> None:
    """``LOCAL_RANK`` for mmengine's launcher from ``--local-rank`` unless the launcher set it."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def default_work_dir(config: str) -> str:
    """``./work_dirs/<config file name without .py>`` (mmseg's default)."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


def set_work_dir(cfg: Config, work_dir, config: str) -> None:
    """The work dir: ``work_dir`` (``--work-dir``), else the config's ``work_dir``, else :func:`default_work_dir`."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(config)


def enable_amp(cfg: Config) -> None:
    """``--amp``: the config's ``OptimWrapper`` becomes ``AmpOptimWrapper`` with a dynamic loss scale."""
    kind = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if kind == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current', level=logging.WARNING)
        return
    if kind != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper (it becomes AmpOptimWrapper); the config '
                         f'has {kind!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def build_train_config(config: str, work_dir=None, resume: bool = False, amp: bool = False, cfg_options=None,
                       launcher: str = 'none') -> Config:
    """The training config of ``config`` (a file or a shipped config's name) with the options applied."""
    cfg = read_config(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    set_work_dir(cfg, work_dir, find_config(config))
    if amp:
        enable_amp(cfg)
    cfg.resume = resume
    return cfg


def train(cfg: Config, trust_checkpoint: bool = False, source: str = 'the config'):
    """Train with ``cfg``'s runner (``SafeCheckpointRunner`` unless it names a ``runner_type``); the runner."""
    init_cpu_distributed(cfg)
    runner = SafeCheckpointRunner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if isinstance(runner, SafeCheckpointRunner):
        runner.trust_checkpoint = trust_checkpoint
        runner.train()
        return runner
    if trust_checkpoint:
        raise ValueError(f'{source}: --trust-checkpoint needs SafeCheckpointRunner (or a subclass), not the '
                         f'runner_type {cfg.runner_type!r}')
    with checkpoint_safe_globals():  # mmengine's loader (weights_only=True on torch >= 2.6) with the allow-list
        runner.train()
    return runner


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('config', help='config file, or the name of a shipped config (uqseg configs list)')
    parser.add_argument('--work-dir', help='the folder for logs and checkpoints')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir (or the config\'s load_from)')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (AmpOptimWrapper)')
    add_launcher_arguments(parser)
    add_checkpoint_arguments(parser, partial=False)


def run(args: argparse.Namespace):
    """Train; the runner (its ``work_dir``, ``iter``, ``message_hub``)."""
    set_local_rank(args.local_rank)
    cfg = build_train_config(args.config, args.work_dir, args.resume, args.amp, args.cfg_options, args.launcher)
    return train(cfg, args.trust_checkpoint, args.config)
