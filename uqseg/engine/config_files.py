"""Where the shipped configs are and how a config is named: a file path, or a shipped config's name.

The configs ship inside the package (``uqseg/configs``; the repository's ``configs/`` links to it).
A NAME is a config's path under that folder with or without ``.py`` (``aslp_sod``,
``cls/ce_fmnist_demo``). The commands (``uqseg.cli.configs``) and the ensembles' members
(:mod:`uqseg.engine.members`) resolve configs here.
"""
from __future__ import annotations

import os
import os.path as osp

__all__ = ['CONFIG_ROOT', 'list_configs', 'shipped_config', 'find_config']

#: The folder of the shipped configs.
CONFIG_ROOT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')


def list_configs(root: str = CONFIG_ROOT) -> list[str]:
    """The shipped configs' names (path under ``root`` without ``.py``), ``_base_`` files left out."""
    names = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ('_base_', '__pycache__'))
        rel = osp.relpath(folder, root)
        names += [osp.normpath(osp.join(rel, f[:-3])) for f in sorted(files) if f.endswith('.py')]
    return sorted(names)


def shipped_config(name: str, root: str = CONFIG_ROOT) -> str:
    """The path of the shipped config ``name`` (``aslp_sod``, ``aslp_sod.py``, ``cls/ce_fmnist_demo``)."""
    rel = name[:-3] if name.endswith('.py') else name
    if rel.startswith('configs/'):
        rel = rel[len('configs/'):]
    path = osp.join(root, rel + '.py')
    if not osp.isfile(path) or osp.isabs(rel) or '..' in rel.split('/'):
        close = [c for c in list_configs(root) if osp.basename(rel) in c][:5]
        hint = f'; did you mean {", ".join(close)}?' if close else '; "uqseg configs list" lists them'
        raise FileNotFoundError(f'{name}: no such config file, and no shipped config of that name{hint}')
    return path


def find_config(path_or_name: str) -> str:
    """``path_or_name`` when that file exists, else the shipped config of that name."""
    return path_or_name if osp.isfile(path_or_name) else shipped_config(path_or_name)
