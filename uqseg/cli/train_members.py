"""Train the members of a deep ensemble: one config, one training per seed, and the ensemble's config.

    uqseg train-members CONFIG --seeds 0 1 2 3 4 [--work-dir DIR] [--jobs N] [--dry-run]
                        [--cfg-options KEY=VALUE ...]
    uqseg train-members CONFIG --members M        # seeds 0 .. M-1 (default: 5 members)
    uqseg test DIR/ensemble.py                    # then: the ensemble, no checkpoint argument
    python tools/train_members.py CONFIG [...]    # the same

CONFIG is a config file or the name of a shipped one (``uqseg configs list``). Each member is a
``uqseg train CONFIG --work-dir DIR/seed<s> --cfg-options ... randomness.seed=<s>`` subprocess,
its output in ``DIR/seed<s>/train.log`` (one line per member here), one after the other
(``--jobs N``: N at once, each with OMP_NUM_THREADS = cores / N unless it is set). DIR defaults
to ``./work_dirs/<config name>_members``.

Run it again to go on: a member is finished when mmengine's ``DIR/seed<s>/last_checkpoint``
names the final checkpoint of the config's schedule (``iter_<max_iters>.pth`` or
``epoch_<max_epochs>.pth`` of ``train_cfg``, after ``--cfg-options``) and is skipped; one with an
earlier checkpoint (a killed run) is resumed from it (``uqseg train --resume``); one without
a checkpoint starts. ``--dry-run`` prints that plan and trains nothing.

When every member is finished it writes ``DIR/ensemble.py``, the base config with its model
replaced by ``EnsembleSegmentor`` (``EnsembleClassifier`` for an mmpretrain config) over the
members' checkpoints, and ``DIR/members.json`` (per member: seed, work dir, checkpoint, finished),
and prints the path of ensemble.py.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import re
from typing import NamedTuple, Optional, Sequence, Union

from mmengine.config import Config, DictAction

from uqseg.cli.configs import find_config, read_config
from uqseg.cli.demo import Stages, config_name, job_env, last_checkpoint, run_jobs, uqseg_command, usable_cpus
from uqseg.cli.test import is_classifier_config

__all__ = ['DEFAULT_MEMBERS', 'STATES', 'ENSEMBLE_FILE', 'MEMBERS_FILE', 'TRAIN_LOG', 'Member',
           'parse_cfg_options', 'member_config', 'final_checkpoint_name', 'member_dir', 'latest_checkpoint',
           'member_state', 'member_plan', 'member_command', 'ensemble_model_cfg', 'write_ensemble_config',
           'member_records', 'train_members', 'check_seeds', 'default_work_dir']

#: The number of members without ``--seeds`` / ``--members`` (Lakshminarayanan et al.'s five).
DEFAULT_MEMBERS = 5
#: A member's state before a run: skipped, resumed from its last checkpoint, or trained from the start.
STATES = ('finished', 'resume', 'start')
#: The files written into the ensemble's work dir.
ENSEMBLE_FILE, MEMBERS_FILE = 'ensemble.py', 'members.json'
#: A member's training log (in its work dir).
TRAIN_LOG = 'train.log'
#: Top-level keys of ``--cfg-options`` that belong to training and stay out of ensemble.py's own settings.
_TRAINING_KEYS = ('model', 'randomness', 'load_from', 'resume', 'work_dir')
_STEP = re.compile(r'(\d+)')


class Member(NamedTuple):
    seed: int
    work_dir: str  #: ``<ensemble dir>/seed<seed>``
    state: str  #: one of :data:`STATES`


def parse_cfg_options(options: Sequence[str]) -> dict:
    """``['a.b=1', 'c=[1,2]']`` as mmengine's ``DictAction`` reads them (``--cfg-options``): ``{'a.b': 1, ...}``."""
    if not options:
        return {}
    parser = argparse.ArgumentParser(prog='--cfg-options', add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    try:
        return parser.parse_args(['--cfg-options', *options]).cfg_options
    except (SystemExit, ValueError):  # a malformed KEY=VALUE (DictAction's unpacking, argparse's exit)
        raise ValueError(f'--cfg-options {" ".join(options)}: each must be KEY=VALUE') from None


def member_config(config: Union[str, Config], cfg_options: Optional[dict] = None) -> Config:
    """The config the members train with: ``config`` (a file, a shipped name or a Config, copied) with
    ``cfg_options`` merged."""
    cfg = Config(config.to_dict(), filename=config.filename) if isinstance(config, Config) else read_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def final_checkpoint_name(cfg: Config, source: str = 'the config') -> str:
    """The file name of the checkpoint that ends ``cfg``'s schedule: mmengine's ``CheckpointHook`` name
    (``filename_tmpl``, default ``iter_{}.pth`` / ``epoch_{}.pth``) of ``train_cfg``'s ``max_iters`` or
    ``max_epochs``. A ``ValueError`` naming ``source`` when the schedule saves no such checkpoint."""
    loop = cfg.get('train_cfg') or {}
    kind = str(loop.get('type', ''))
    if kind.endswith('IterBasedTrainLoop'):
        by_epoch = False
    elif kind.endswith('EpochBasedTrainLoop'):
        by_epoch = True
    elif 'by_epoch' in loop and not kind:
        by_epoch = bool(loop['by_epoch'])
    elif ('max_iters' in loop) != ('max_epochs' in loop):
        by_epoch = 'max_epochs' in loop
    else:
        raise ValueError(f'{source}: train_cfg {dict(loop)} names no schedule (type IterBasedTrainLoop with '
                         'max_iters, or EpochBasedTrainLoop / by_epoch=True with max_epochs)')
    key = 'max_epochs' if by_epoch else 'max_iters'
    if not isinstance(loop.get(key), int) or loop[key] < 1:
        raise ValueError(f'{source}: train_cfg.{key} must be a positive integer, not {loop.get(key)!r}')
    hooks = cfg.get('default_hooks') or {}
    hook = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))  # mmengine's default hook
    if hook is None:
        raise ValueError(f'{source}: default_hooks.checkpoint is None: the members would save no checkpoint')
    if bool(hook.get('by_epoch', True)) != by_epoch:
        raise ValueError(f'{source}: default_hooks.checkpoint.by_epoch={hook.get("by_epoch", True)} with '
                         f'train_cfg.{key}: the final checkpoint would not be named by the {key.split("_")[1]}')
    interval = hook.get('interval', -1)
    if not hook.get('save_last', True) and (interval <= 0 or loop[key] % interval):
        raise ValueError(f'{source}: default_hooks.checkpoint.save_last=False and train_cfg.{key}={loop[key]} is '
                         f'not a multiple of its interval {interval}: the end of training saves no checkpoint')
    template = hook.get('filename_tmpl') or ('epoch_{}.pth' if by_epoch else 'iter_{}.pth')
    return template.format(loop[key])


def member_dir(work_dir: str, seed: int) -> str:
    """The work dir of the member of ``seed``: ``<work_dir>/seed<seed>``."""
    return osp.join(work_dir, f'seed{seed}')


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint that mmengine's ``<work_dir>/last_checkpoint`` names (looked up in ``work_dir`` by
    its file name when the path recorded is gone, e.g. a moved folder); None without ``last_checkpoint``."""
    if not osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        return None
    named = last_checkpoint(work_dir)
    for path in (named, osp.join(work_dir, osp.basename(named))):
        if named and osp.isfile(path):
            return path
    raise FileNotFoundError(f'{osp.join(work_dir, "last_checkpoint")} names {named!r}, which does not exist: '
                            'delete last_checkpoint to train this member from the start')


def _step(name: str) -> Optional[int]:
    found = _STEP.findall(name)
    return int(found[-1]) if found else None


def member_state(work_dir: str, final_name: str) -> str:
    """``'finished'`` (the last checkpoint is ``final_name``), ``'resume'`` (an earlier one) or ``'start'``
    (none); a ``ValueError`` when the last checkpoint lies past ``final_name`` (another schedule)."""
    latest = latest_checkpoint(work_dir)
    if latest is None:
        return 'start'
    name = osp.basename(latest)
    if name == final_name:
        return 'finished'
    step, final = _step(name), _step(final_name)
    if step is not None and final is not None and step > final:
        raise ValueError(f'{work_dir}: its last checkpoint {name} lies past the end of the schedule ({final_name}): '
                         'trained with another schedule? use another --work-dir')
    return 'resume'


def default_work_dir(config: str) -> str:
    """``./work_dirs/<config name>_members``."""
    return osp.join('./work_dirs', f'{config_name(config)}_members')


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list; a ``ValueError`` when empty, repeated or outside numpy's ``[0, 2**32)``."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError('--seeds: no seed given (an ensemble needs at least one member)')
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f'--seeds {" ".join(map(str, seeds))}: seed {", ".join(map(str, repeated))} repeated '
                         '(two members of one seed are one model twice)')
    bad = [s for s in seeds if not 0 <= s < 2 ** 32]
    if bad:
        raise ValueError(f'--seeds: {bad[0]} is not a seed (0 <= seed < 2**32)')
    return seeds


def member_plan(config: Union[str, Config], seeds: Sequence[int], work_dir: str,
                cfg_options: Optional[dict] = None) -> list[Member]:
    """What a run does with each seed's member (``<work_dir>/seed<s>``): ``Member(seed, dir, state)``,
    the state read from its checkpoints against the final one of ``config`` with ``cfg_options``."""
    cfg = member_config(config, cfg_options)
    final = final_checkpoint_name(cfg, cfg.filename or str(config))
    return [Member(seed, member_dir(work_dir, seed), member_state(member_dir(work_dir, seed), final))
            for seed in check_seeds(seeds)]


def member_command(config: str, member: Member, options: Sequence[str] = ()) -> list[str]:
    """The ``uqseg train`` command of ``member`` (``options``: ``--cfg-options`` as typed); a resumed member
    loads its last checkpoint (``--resume`` with ``load_from``)."""
    opts = [*options, f'randomness.seed={member.seed}']
    resume = []
    if member.state == 'resume':
        resume = ['--resume']
        opts.append(f'load_from={latest_checkpoint(member.work_dir)}')
    return uqseg_command('train', config, '--work-dir', member.work_dir, *resume, '--cfg-options', *opts)


def ensemble_model_cfg(cfg: Config, config: str, checkpoints: Sequence[str],
                       cfg_options: Optional[dict] = None) -> dict:
    """The ``model`` of an ensemble of ``config``'s members (``cfg``: that config read): ``EnsembleSegmentor``
    (``EnsembleClassifier`` for mmpretrain) over the ``checkpoints``. Each member normalises its inputs with
    its config's data preprocessor; the ensemble's own is None (it moves the batch only), which also keeps the
    Runner from giving it the base config's top-level ``data_preprocessor`` (a second normalisation)."""
    members = []
    for ckpt in checkpoints:
        member = dict(config=osp.abspath(config), checkpoint=osp.abspath(ckpt))
        if cfg_options:
            member['cfg_options'] = dict(cfg_options)
        members.append(member)
    return dict(_delete_=True, type='EnsembleClassifier' if is_classifier_config(cfg) else 'EnsembleSegmentor',
                members=members, data_preprocessor=None)


def write_ensemble_config(config: str, checkpoints: Sequence[str], out: str, cfg_options: Optional[dict] = None,
                          seeds: Sequence[int] = ()) -> str:
    """Write ``out``: ``_base_ = [<config>]`` with the model replaced by :func:`ensemble_model_cfg` and the
    other top-level settings that ``cfg_options`` changed (data roots, test loader...) written out; ``out``."""
    config = osp.abspath(find_config(config))
    cfg = member_config(config, cfg_options)
    settings = dict(model=ensemble_model_cfg(cfg, config, checkpoints, cfg_options))
    for key in dict.fromkeys(k.split('.', 1)[0] for k in cfg_options or {}):
        if key not in _TRAINING_KEYS and key in cfg:
            value = cfg[key]
            settings[key] = value.to_dict() if hasattr(value, 'to_dict') else value
    seeds_text = f' (seeds {" ".join(map(str, seeds))})' if seeds else ''
    header = (f'# A deep ensemble of {len(checkpoints)} members of {config}{seeds_text},\n'
              f'# written by uqseg train-members. Test it with: uqseg test {osp.abspath(out)}\n'
              f'_base_ = [{config!r}]\n')
    with open(out, 'w') as f:
        f.write(header + Config(settings).pretty_text)
    return out


def member_records(members: Sequence[Member], final_name: str) -> list[dict]:
    """Per member: ``seed``, ``work_dir``, ``checkpoint`` (its last, None before the first), ``finished``, ``log``."""
    records = []
    for m in members:
        ckpt = latest_checkpoint(m.work_dir)
        records.append(dict(seed=m.seed, work_dir=osp.abspath(m.work_dir),
                            checkpoint=osp.abspath(ckpt) if ckpt else None,
                            finished=ckpt is not None and osp.basename(ckpt) == final_name,
                            log=osp.abspath(osp.join(m.work_dir, TRAIN_LOG))))
    return records


def train_members(config: str, seeds: Sequence[int], work_dir: Optional[str] = None, options: Sequence[str] = (),
                  jobs: int = 1, dry_run: bool = False, stages: Optional[Stages] = None) -> dict:
    """Train the members of ``config`` not finished yet (``options``: ``--cfg-options`` as typed), ``jobs`` at
    once, then write ensemble.py and members.json into ``work_dir``. Returns ``plan`` (the
    :class:`Member` states before), ``members`` (the records of members.json), ``ensemble`` (its path;
    None with ``dry_run``, which prints the plan and the commands and trains nothing)."""
    if jobs < 1:
        raise ValueError(f'--jobs {jobs}: must be at least 1')
    path = find_config(config)
    work_dir = work_dir or default_work_dir(path)
    cfg_options = parse_cfg_options(options)
    cfg = member_config(path, cfg_options)
    final = final_checkpoint_name(cfg, path)
    plan = member_plan(cfg, seeds, work_dir)
    todo = [m for m in plan if m.state != 'finished']
    jobs = max(1, min(jobs, len(todo)))
    env = job_env(jobs)
    commands = {m.seed: member_command(path, m, options) for m in todo}
    print(f'uqseg train-members: {len(plan)} members of {config_name(path)} (seeds {" ".join(map(str, seeds))}) '
          f'to {final} in {work_dir}: {len(plan) - len(todo)} finished, '
          f'{sum(m.state == "resume" for m in todo)} to resume, {sum(m.state == "start" for m in todo)} to start'
          + (f'; {jobs} at once with OMP_NUM_THREADS={env["OMP_NUM_THREADS"]}' if todo else ''), flush=True)
    for m in plan:
        if m.state == 'finished':
            print(f'  seed {m.seed}: finished ({osp.join(m.work_dir, final)}), skipped', flush=True)
        elif dry_run:
            what = f'resume from {osp.basename(latest_checkpoint(m.work_dir))}' if m.state == 'resume' else 'start'
            print(f'  seed {m.seed}: {what}: {" ".join(commands[m.seed])}', flush=True)
    if dry_run:
        return dict(plan=plan, members=None, ensemble=None, commands=commands)
    stages = stages or Stages(len(todo))
    os.makedirs(work_dir, exist_ok=True)

    def task(m: Member):
        what = f'train seed {m.seed}' + (f' (resume from {osp.basename(latest_checkpoint(m.work_dir))})'
                                         if m.state == 'resume' else '')
        return lambda cancel: stages.run(what, commands[m.seed], osp.join(m.work_dir, TRAIN_LOG), env=env,
                                         cancel=cancel, announce=True, training=f'seed {m.seed}')

    try:
        run_jobs([task(m) for m in todo], jobs, stages)
    finally:
        records = member_records(plan, final)
        with open(osp.join(work_dir, MEMBERS_FILE), 'w') as f:
            json.dump(dict(config=osp.abspath(path), cfg_options=list(options), final_checkpoint=final,
                           members=records), f, indent=1)
    unfinished = [r['seed'] for r in records if not r['finished']]
    if unfinished:  # a training that ended without its final checkpoint (a changed schedule in the config)
        raise ValueError(f'seed {", ".join(map(str, unfinished))}: trained without reaching {final}; see '
                         f'{TRAIN_LOG} in {work_dir}/seed<seed>')
    ensemble = write_ensemble_config(path, [r['checkpoint'] for r in records], osp.join(work_dir, ENSEMBLE_FILE),
                                     cfg_options, [m.seed for m in plan])
    print(f'ensemble config: {ensemble}\n  test it with: uqseg test {ensemble}', flush=True)
    return dict(plan=plan, members=records, ensemble=ensemble, commands=commands)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('config', help='config file, or the name of a shipped config (uqseg configs list)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--seeds', nargs='+', type=int, metavar='SEED', help='one member per seed')
    which.add_argument('--members', type=int, metavar='M',
                       help=f'M members, seeds 0 .. M-1 (default without --seeds: {DEFAULT_MEMBERS})')
    parser.add_argument('--work-dir', help='the ensemble\'s folder (default ./work_dirs/<config name>_members)')
    parser.add_argument('--jobs', type=int, default=1, metavar='N',
                        help=f'members trained at once (default 1; this machine has {usable_cpus()} cores)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='override settings of the config for every member (and in ensemble.py)')
    parser.add_argument('--dry-run', action='store_true', help='print what would be trained, skipped, resumed')


def run(args: argparse.Namespace) -> dict:
    """Train the members; :func:`train_members`' result."""
    if args.members is not None and args.members < 1:
        raise ValueError(f'--members {args.members}: an ensemble needs at least one member')
    seeds = args.seeds if args.seeds is not None else list(range(args.members or DEFAULT_MEMBERS))
    return train_members(args.config, seeds, args.work_dir, args.cfg_options, args.jobs, args.dry_run)
