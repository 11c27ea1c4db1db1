"""Train a segmentor with uqseg's components: mmseg's tools/train.py, with ``import uqseg``.

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG GPUS [...]

Checkpoints (``--resume``, ``load_from``) load through ``SafeCheckpointRunner``
(``uqseg.engine.checkpoint``): ``torch.load(weights_only=True)`` with the allow-list of the types
mmengine / uqseg checkpoints hold (``--trust-checkpoint`` for a file you trust that holds others);
a resumed checkpoint must fit the model, ``load_from`` may load part of it (mmengine's
fine-tuning load, the keys that did not fit named in a warning). A config with its own
``runner_type`` runs that runner, its loads inside the allow-list.
"""
import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmseg.registry import RUNNERS

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.compat import init_cpu_distributed
from uqseg.engine.checkpoint import SafeCheckpointRunner, add_checkpoint_arguments, checkpoint_safe_globals


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor (mmseg + uqseg)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', action='store_true', default=False,
                        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (see mmseg)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_checkpoint_arguments(parser, partial=False)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if cfg.optim_wrapper.type == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.', logger='current',
                      level=logging.WARNING)
        else:
            if cfg.optim_wrapper.type != 'OptimWrapper':
                raise ValueError('--amp is only supported when the optimizer wrapper type is '
                                 f'OptimWrapper, but the config has {cfg.optim_wrapper.type}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    init_cpu_distributed(cfg)
    runner = SafeCheckpointRunner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if isinstance(runner, SafeCheckpointRunner):
        runner.trust_checkpoint = args.trust_checkpoint
        runner.train()
        return runner
    if args.trust_checkpoint:
        raise ValueError(f'{args.config}: --trust-checkpoint needs SafeCheckpointRunner (or a subclass), not the '
                         f'runner_type {cfg.runner_type!r}')
    with checkpoint_safe_globals():  # mmengine's loader (weights_only=True on torch >= 2.6) with the allow-list
        runner.train()
    return runner


if __name__ == '__main__':
    main()
