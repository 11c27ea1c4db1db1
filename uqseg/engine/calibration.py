"""The calibrated checkpoint and the split ``T`` is fitted on, for both front ends'
``uqseg calibrate`` command (:mod:`uqseg.cli.calibrate`, for mmseg and mmpretrain configs; the fit
is :func:`uqseg.core.temperature.fit_temperature`).

A calibrated checkpoint is the trained one with ``state_dict['temperature'] = T`` (what
:class:`~uqseg.core.temperature_buffer.TemperatureBuffer` loads) and the fit's record in
``meta['uqseg_temperature']``, which says the ``bounds`` ``T`` was held to and which one it
reached, if any (``bound_reached``: then ``T`` is the bound, not the optimum, and the tool prints a
warning). ``T`` is never fitted on a test split: :func:`check_calibration_split`
refuses ``split='test'`` and a validation dataset that reads the same data as a test dataset
(same type, root, prefix, annotation file and split), e.g. mmseg's and mmpretrain's reference
configs, which validate on their test set.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config

from ..core.temperature import (
    TEMPERATURE_KEY,
    TemperatureFit,
    calibration_summary,
    check_bounds,
    check_temperature,
    fit_temperature_result,
)
from .checkpoint import load_checkpoint_file

__all__ = ['META_KEY', 'SPLITS', 'checkpoint_temperature', 'write_calibrated_checkpoint', 'dataset_identities',
           'check_calibration_split', 'calibration_config', 'fit_calibration',
           'save_calibration']

#: the dataloaders a calibration tool may fit on
SPLITS = ('val', 'test')

#: the checkpoint ``meta`` key of the fit's record
META_KEY = 'uqseg_temperature'


def checkpoint_temperature(path: str, trust: bool = False) -> Optional[torch.Tensor]:
    """The ``temperature`` of the checkpoint at ``path``, None if it holds none (loaded by
    :func:`~uqseg.engine.checkpoint.load_checkpoint_file`; ``trust``: ``--trust-checkpoint``)."""
    ckpt = load_checkpoint_file(path, map_location='cpu', trust=trust)
    state = ckpt.get('state_dict', ckpt)
    return state.get(TEMPERATURE_KEY)


def write_calibrated_checkpoint(src: str, dst: str, temperature, record: dict, trust: bool = False) -> None:
    """``src`` with ``state_dict['temperature'] = T`` and the fit's ``record`` in ``meta`` (``src``
    loaded by :func:`~uqseg.engine.checkpoint.load_checkpoint_file`; ``trust``: ``--trust-checkpoint``)."""
    t = check_temperature(temperature, 'the fitted temperature').float()
    ckpt = load_checkpoint_file(src, map_location='cpu', trust=trust)
    if 'state_dict' not in ckpt:
        ckpt = {'state_dict': ckpt}
    ckpt['state_dict'][TEMPERATURE_KEY] = t
    ckpt.setdefault('meta', {})[META_KEY] = dict(record, temperature=t.tolist(), source_checkpoint=src)
    torch.save(ckpt, dst)


def dataset_identities(cfg) -> list:
    """The data a dataset config reads, ``(type, data_root, data_prefix, ann_file, split, data_file)``
    per dataset (``ConcatDataset`` unrolled; the root normalised; pipelines and other settings
    aside)."""
    if cfg is None:
        return []
    if cfg.get('type') == 'ConcatDataset':
        return [d for sub in cfg['datasets'] for d in dataset_identities(sub)]
    prefix = cfg.get('data_prefix') or {}
    if isinstance(prefix, str):
        prefix = {'root': prefix}
    root = cfg.get('data_root')
    return [(cfg.get('type'), osp.normpath(root) if root else root, tuple(sorted(dict(prefix).items())),
             cfg.get('ann_file'), cfg.get('split'), cfg.get('data_file'))]


def check_calibration_split(cfg, split: str, allow_test: bool, source: str) -> None:
    """Refuse, naming ``source``, fitting ``T`` on the test split (``split='test'``, or a val
    dataset that is one of the config's test datasets) unless ``allow_test``."""
    if allow_test:
        return
    if split == 'test':
        raise ValueError(f'{source}: --split test fits T on the test split; fit on a validation split (or pass '
                         '--allow-test-split)')
    tests = dataset_identities((cfg.get('test_dataloader') or {}).get('dataset'))
    for d in dataset_identities(cfg.val_dataloader.dataset):
        if d in tests:
            raise ValueError(f'{source}: the val dataset ({d[0]} at {d[1]}, {dict(d[2]) or d[3]}'
                             + (f', split {d[4]!r}' if d[4] else '') + ') is also a test dataset of this config, and '
                             'T must not be fitted on the test split: point val_dataloader.dataset at a held-out '
                             'split (--cfg-options) or pass --allow-test-split')


def calibration_config(args, cfg: Config) -> Config:
    """The tool's config ``cfg`` (as read from ``args.config``) with ``--cfg-options`` merged, after
    checking that the checkpoint exists, the ``--bounds`` are valid and ``T`` is not fitted on the
    test split."""
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    check_bounds(args.bounds, '--bounds')
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    check_calibration_split(cfg, args.split, args.allow_test_split, args.config)
    return cfg


def fit_calibration(args, z: torch.Tensor, y: torch.Tensor) -> TemperatureFit:
    """The tools' fit of ``T`` on the rows ``(z, y)`` (all of them) with their ``--method``,
    ``--per-class``, ``--n-bins`` and ``--bounds``."""
    return fit_temperature_result(z, y, method=args.method, per_class=args.per_class, max_samples=None,
                                  n_bins=args.n_bins, bounds=args.bounds)


def save_calibration(args, fit: TemperatureFit, z: torch.Tensor, y: torch.Tensor, record: dict, what: str) -> dict:
    """Report the fit (accuracy / ECE / NLL / Brier before and after on ``(z, y)``; a warning line
    when ``T`` reached a bound), write the calibrated checkpoint (``args.out``, default
    ``<checkpoint>_calibrated.pth``) and its record ``<out>.json`` (with ``bounds`` and
    ``bound_reached``); the record. ``what`` says what the fit saw (for the printed line)."""
    t = fit.temperature
    before, after = calibration_summary(z, y, 1.0, args.n_bins), calibration_summary(z, y, t, args.n_bins)
    record = dict(record, method=args.method, per_class=args.per_class, split=args.split, config=args.config,
                  n_bins=args.n_bins, **fit.record(), before=before, after=after)
    dst = args.out or osp.splitext(args.checkpoint)[0] + '_calibrated.pth'
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    write_calibrated_checkpoint(args.checkpoint, dst, t, record, trust=args.trust_checkpoint)
    record['temperature'] = t.tolist()
    with open(osp.splitext(dst)[0] + '.json', 'w') as f:
        json.dump(record, f, indent=1)
    tv = t.tolist()
    shown = f'{tv:.5g}' if isinstance(tv, float) else '[' + ', '.join(f'{v:.4g}' for v in tv) + ']'
    print(f'T = {shown} ({args.method}, fitted on the {args.split} split: {what})')
    if fit.bound_reached:
        print(f'WARNING: {fit.message()}')
    print(f'{"":8}' + ''.join(f'{k:>10}' for k in before))
    for name, vals in (('before', before), ('after', after)):
        print(f'{name:8}' + ''.join(f'{v:>10.4f}' for v in vals.values()))
    print(f'wrote {dst} (meta[{META_KEY!r}])')
    record['out'] = dst
    return record
