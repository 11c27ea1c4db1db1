"""The members of an ensemble as a config lists them: one reader for both front ends' ensembles.

``EnsembleSegmentor`` and ``EnsembleClassifier`` take the same ``members``, as ``uqseg
train-members`` writes them::

    members=[dict(config='configs/ce_shapes_demo.py', checkpoint='.../seed0/iter_800.pth'),
             dict(config='ce_shapes_demo', checkpoint='...', cfg_options={'model.decode_head.dropout_ratio': 0.2}),
             dict(model=dict(type='EncoderDecoder', ...), checkpoint='...')]

``config`` is a config file or a shipped config's name (:func:`uqseg.engine.config_files.find_config`),
``cfg_options`` are merged into it; ``model`` is a model config given directly. :func:`member_specs`
reads them (nothing built or loaded), :func:`check_member_checkpoint` refuses a member without its
checkpoint, and :func:`check_member_classes` members whose class counts or class names differ (the
names of the configs' datasets, else those a checkpoint's ``meta.dataset_meta`` holds). Every error
names the ensemble and the member.
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Callable, Optional, Sequence

from mmengine.config import Config, ConfigDict

from .config_files import find_config

__all__ = ['MEMBER_KEYS', 'MemberSpec', 'member_specs', 'config_classes', 'checkpoint_classes',
           'check_member_checkpoint', 'check_member_classes']

#: The keys of one member.
MEMBER_KEYS = ('config', 'model', 'checkpoint', 'cfg_options')


class MemberSpec:
    """One member as configured: its config (``cfg``, with ``model``), checkpoint, the class names its
    config's datasets give (None where unknown) and a name for messages (``member <i> (<config>)``)."""

    def __init__(self, index: int, cfg: Config, checkpoint: Optional[str], classes: Optional[tuple],
                 where: str) -> None:
        self.index, self.cfg, self.checkpoint, self.classes, self.where = index, cfg, checkpoint, classes, where

    @property
    def model(self) -> ConfigDict:
        """The member's model config (a copy)."""
        return copy.deepcopy(self.cfg.model)

    @property
    def name(self) -> str:
        return f'member {self.index} ({self.where})'


def _datasets(cfg) -> list:
    """The dataset configs of the test, val and train loaders, each unwrapped to its first inner dataset."""
    out = []
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        loader = cfg.get(key)
        ds = loader.get('dataset') if isinstance(loader, dict) else None
        while isinstance(ds, dict):
            out.append(ds)
            inner = ds.get('datasets')
            ds = ds.get('dataset') or (inner[0] if inner else None)
    return out


def config_classes(cfg, dataset_type: Optional[Callable[[str], object]] = None) -> Optional[tuple]:
    """The class names a config's datasets declare (``classes`` or ``metainfo.classes``), else the
    ``METAINFO`` of the first dataset type ``dataset_type`` (a registry's ``get``) resolves; None."""
    datasets = _datasets(cfg)
    for ds in datasets:
        classes = ds.get('classes') or (ds.get('metainfo') or {}).get('classes')
        if classes:
            return tuple(str(c) for c in classes)
    if dataset_type is not None:
        for ds in datasets:
            kind = dataset_type(ds['type']) if isinstance(ds.get('type'), str) else None
            classes = getattr(kind, 'METAINFO', {}).get('classes') if kind is not None else None
            if classes:
                return tuple(str(c) for c in classes)
    return None


def checkpoint_classes(checkpoint) -> Optional[tuple]:
    """The class names a loaded checkpoint's ``meta.dataset_meta`` holds, None without."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    classes = ((meta or {}).get('dataset_meta') or {}).get('classes')
    return tuple(str(c) for c in classes) if classes else None


def member_specs(members: Sequence[dict], owner: str, default_scope: str,
                 dataset_type: Optional[Callable[[str], object]] = None) -> list[MemberSpec]:
    """The ``members`` of an ensemble ``owner`` read: configs found and parsed, ``cfg_options``
    merged, class names from the configs (``dataset_type``: the front end's dataset registry's
    ``get``); a ``model`` member gets ``default_scope``. Nothing is built or loaded."""
    if isinstance(members, dict) or not members:
        raise ValueError(f'{owner}: members must be a non-empty list of dict(config=..., checkpoint=...) or '
                         f'dict(model=..., checkpoint=...), got {members!r}')
    specs = []
    for i, m in enumerate(members):
        if not isinstance(m, dict) or ('config' in m) == ('model' in m):
            raise ValueError(f'{owner}: member {i} must be dict(config=PATH, checkpoint=PATH[, cfg_options=...]) or '
                             f'dict(model=<model config>, checkpoint=PATH), got {m!r}')
        unknown = sorted(set(m) - set(MEMBER_KEYS))
        if unknown:
            raise KeyError(f'{owner}: member {i}: unknown key(s) {unknown}; the keys are {", ".join(MEMBER_KEYS)}')
        if 'config' in m:
            try:
                path = find_config(str(m['config']))
            except FileNotFoundError as e:
                raise FileNotFoundError(f'{owner}: member {i}: {e}') from None
            cfg, where = Config.fromfile(path), path
        else:
            if not isinstance(m['model'], dict):
                raise ValueError(f'{owner}: member {i}: model must be a model config dict, got {m["model"]!r}')
            model = m['model'].to_dict() if hasattr(m['model'], 'to_dict') else copy.deepcopy(dict(m['model']))
            cfg, where = Config(dict(model=model, default_scope=default_scope)), f"model {model.get('type', '?')}"
        if m.get('cfg_options'):
            cfg.merge_from_dict(dict(m['cfg_options']))
        if not isinstance(cfg.get('model'), dict):
            raise ValueError(f'{owner}: member {i} ({where}) has no model in its config')
        specs.append(MemberSpec(i, cfg, m.get('checkpoint'), config_classes(cfg, dataset_type), where))
    return specs


def check_member_checkpoint(spec: MemberSpec, owner: str) -> str:
    """The member's checkpoint path; ``ValueError`` without one, ``FileNotFoundError`` for a missing file."""
    if not spec.checkpoint:
        raise ValueError(f'{owner}: {spec.name} has no checkpoint; an ensemble member is a trained model: give '
                         'checkpoint=PATH (uqseg train-members trains them and writes the config)')
    if not osp.isfile(str(spec.checkpoint)):
        raise FileNotFoundError(f'{owner}: {spec.name}: checkpoint {spec.checkpoint!r} does not exist (train the '
                                'members with uqseg train-members)')
    return str(spec.checkpoint)


def check_member_classes(specs: Sequence[MemberSpec], counts: Sequence[int], owner: str) -> Optional[tuple]:
    """Refuse members whose class counts differ, or whose class names (``spec.classes``, where known)
    differ, naming both members and the first differing class; the class names, None if none is known."""
    for spec, k in zip(specs[1:], counts[1:]):
        if k != counts[0]:
            raise ValueError(f'{owner}: {spec.name} has {k} classes but {specs[0].name} has {counts[0]}: the '
                             'members of an ensemble must predict the same classes')
    named = [s for s in specs if s.classes is not None]
    for spec in named[1:]:
        first = named[0]
        if spec.classes != first.classes:
            a, b = spec.classes, first.classes
            at = next((n for n, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            raise ValueError(f'{owner}: the class names of {spec.name} differ from those of {first.name} at class '
                             f'{at} ({a[at] if at < len(a) else None!r} vs {b[at] if at < len(b) else None!r}): '
                             'the members must predict the same classes in the same order')
    return named[0].classes if named else None
