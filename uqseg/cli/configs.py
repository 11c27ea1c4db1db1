"""The configs shipped with uqseg (``uqseg/configs`` in the wheel; ``configs/`` in the repository).

    uqseg configs list [--filter TEXT]          # the shipped configs, one per line
    uqseg configs path NAME                     # the absolute path of one (for _base_ or a look)
    uqseg configs copy NAME [NAME ...] DEST     # copy configs and every _base_ they read into DEST
    uqseg configs copy --all DEST               # the whole folder

A NAME is a config's path under the folder with or without ``.py`` (``aslp_sod``,
``cls/ce_fmnist_demo``). ``copy`` keeps the folder layout (``DEST/aslp_sod_demo.py`` beside
``DEST/_base_/...``), so the copies' relative ``_base_`` lines still resolve and a config of your
own inherits one with ``_base_ = ['./aslp_sod_demo.py']`` (``docs/configs.md``). It refuses to
overwrite a file that differs from the shipped one unless ``--force``. ``uqseg train`` /
``test`` / ``calibrate`` also take a shipped config by NAME where no such file exists.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import os.path as osp
import shutil

from uqseg.cli import debug_parent
from uqseg.engine.config_files import CONFIG_ROOT, find_config, list_configs, shipped_config
from uqseg.optional import installed, missing_message


def base_files(path: str) -> list[str]:
    """The ``_base_`` entries of the config file ``path`` as written (paths or ``pkg::`` names)."""
    from mmengine.config import Config
    bases = Config._get_base_files(path)
    return [bases] if isinstance(bases, str) else list(bases)


def check_scopes(path: str) -> None:
    """An ``ImportError`` naming the extra to install when ``path`` (or a base) reads a missing package."""
    for base in base_files(path):
        if '::' in base:
            package = base.split('::', 1)[0]
            if not installed(package):
                raise ImportError(missing_message(package, f'{path} (its base {base})'))
        else:
            check_scopes(osp.normpath(osp.join(osp.dirname(path), base)))


def read_config(path_or_name: str):
    """``mmengine.Config`` of a config file or shipped config, with a clear error for a missing package."""
    from mmengine.config import Config
    path = find_config(path_or_name)
    check_scopes(path)
    cfg = Config.fromfile(path)
    scope = cfg.get('default_scope')
    if scope and not installed(scope):
        raise ImportError(missing_message(scope, f'{path} (default_scope {scope!r})'))
    return cfg


def config_closure(path: str) -> list[str]:
    """``path`` and every local ``_base_`` file it reads, recursively (absolute paths, each once)."""
    out, todo = [], [osp.abspath(path)]
    while todo:
        current = todo.pop()
        if current in out:
            continue
        out.append(current)
        todo += [osp.normpath(osp.join(osp.dirname(current), b)) for b in base_files(current) if '::' not in b]
    return out


def copy_configs(names: list[str], dest: str, force: bool = False, root: str = CONFIG_ROOT) -> list[str]:
    """Copy the shipped configs ``names`` and their bases into ``dest`` with the folder layout kept.

    A file already in ``dest`` with other content is an error unless ``force`` (nothing is copied
    then); identical files are left. Returns the paths written or already there."""
    files = []
    for name in names:
        files += [f for f in config_closure(shipped_config(name, root)) if f not in files]
    targets = [(f, osp.join(dest, osp.relpath(f, root))) for f in files]
    clash = [t for f, t in targets if osp.exists(t) and not filecmp.cmp(f, t, shallow=False)]
    if clash and not force:
        raise FileExistsError(f'{", ".join(clash[:3])}{" ..." if len(clash) > 3 else ""}: exists with other '
                              'content (--force overwrites)')
    for f, t in targets:
        os.makedirs(osp.dirname(t), exist_ok=True)
        shutil.copyfile(f, t)
    return [t for _, t in targets]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    common = dict(parents=[debug_parent()])  # --debug after the action's arguments too
    listing = sub.add_parser('list', help='list the shipped configs', **common)
    listing.add_argument('--filter', default='', help='only the names containing this text')
    path = sub.add_parser('path', help='print the absolute path of a shipped config', **common)
    path.add_argument('name', help='a shipped config, e.g. aslp_sod or cls/ce_fmnist_demo')
    copy = sub.add_parser('copy', help='copy shipped configs (and their _base_ files) into a folder', **common)
    copy.add_argument('names', nargs='*', metavar='NAME', help='shipped configs to copy')
    copy.add_argument('dest', help='the folder to copy into (made if missing)')
    copy.add_argument('--all', action='store_true', help='copy every shipped config')
    copy.add_argument('--force', action='store_true', help='overwrite files that differ')


def run(args: argparse.Namespace):
    if args.action == 'list':
        names = [n for n in list_configs() if args.filter in n]
        print('\n'.join(names))
        return names
    if args.action == 'path':
        path = shipped_config(args.name)
        print(path)
        return path
    if not args.names and not args.all:
        raise ValueError('copy: name the configs to copy, or --all')
    written = copy_configs(list_configs() if args.all else args.names, args.dest, force=args.force)
    print(f'{len(written)} files in {args.dest}: ' + ', '.join(osp.relpath(w, args.dest) for w in written[:6])
          + (' ...' if len(written) > 6 else ''))
    return written
