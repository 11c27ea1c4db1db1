"""A deep ensemble (Lakshminarayanan et al., 2017) of mmpretrain classifiers, as one model.

Spelling (``uqseg train-members`` writes such a config)::

    model = dict(type='EnsembleClassifier', members=[
        dict(config='cls/ce_fmnist_demo', checkpoint='work_dirs/.../epoch_3.pth'),
        dict(config='my_resnet.py', checkpoint='resnet.pth', cfg_options={'model.head.num_classes': 10}),
        dict(model=dict(type='ImageClassifier', ...), checkpoint='other.pth')])

Each member is built from its config (a file or a shipped config's name, its top-level
``data_preprocessor`` merged in, as mmengine's Runner does; ``cfg_options`` merged first) or its
``model`` dict, with its own data preprocessor, and loaded strictly from its checkpoint by
:func:`~uqseg.engine.checkpoint.load_checkpoint_strict` (the allow-list unless
``trust_checkpoint``), all when the ensemble is built. Members may differ in architecture and
output kind (logits, EDL log alpha, DisMax distance logits): the ensemble is the mixture of their
probabilities. The ensemble's own data preprocessor only moves the batch to the device; each
member normalises it with its own.

At test every member runs on the batch in turn and feeds a
:class:`~uqseg.core.member_statistics.MemberStatistics` (memory independent of the number of
members); the predicted data samples are :func:`~.member_outputs.member_predictions`'s
(``pred_score`` the mean probability, ``pred_label``, ``pred_logits`` the log of the mean,
``pred_member_scores`` with metainfo ``members`` / ``member_scores`` / ``member_kinds``,
``output_kind='logits'``, ``default_score='mutual-information'``). ``mode='tensor'`` returns
``mean_logits()`` ``(N, K)``, what ``uqseg dump-outputs`` collects. An ensemble is not trained
(``mode='loss'`` is an error): train its members (``uqseg train-members``).

Refused when built, naming the member: no members, a member without a checkpoint or with a
missing one, a member that is not a classifier with a head, members with different class counts
or different class names (the configs' dataset ``classes`` / ``metainfo.classes``, else the
checkpoint's ``meta.dataset_meta.classes``, where present).
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.config import Config
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.registry import MODELS
from torch import nn

from ....cli.configs import read_config
from ....core.member_statistics import MemberStatistics
from ....engine.checkpoint import load_checkpoint_strict
from ...outputs import build_classifier, output_kind
from .member_outputs import ENSEMBLE_SCORE, member_predictions

__all__ = ['EnsembleClassifier', 'member_class_names']

_NAME = 'EnsembleClassifier'


def _plain(value):
    return value.to_dict() if hasattr(value, 'to_dict') else copy.deepcopy(value)


def _config_classes(cfg) -> Optional[list]:
    """The class names a config's datasets declare (``classes`` or ``metainfo.classes``), None if none."""
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        loader = cfg.get(key)
        dataset = loader.get('dataset') if isinstance(loader, dict) else None
        while isinstance(dataset, dict):
            classes = dataset.get('classes') or (dataset.get('metainfo') or {}).get('classes')
            if classes:
                return [str(c) for c in classes]
            inner = dataset.get('datasets')
            dataset = dataset.get('dataset') or (inner[0] if inner else None)
    return None


def member_class_names(cfg, checkpoint: Optional[dict]) -> Optional[list]:
    """A member's class names: its config's datasets', else its checkpoint's ``meta.dataset_meta``'s."""
    classes = _config_classes(cfg)
    if classes is None and isinstance(checkpoint, dict):
        meta = (checkpoint.get('meta') or {}).get('dataset_meta') or {}
        classes = [str(c) for c in meta['classes']] if meta.get('classes') else None
    return classes


@MODELS.register_module()
class EnsembleClassifier(BaseModel):
    """A deep ensemble of classifiers (see the module docstring).

    Args:
        members: ``dict(config=PATH | NAME, checkpoint=PATH, cfg_options=None)`` or
            ``dict(model=<model cfg dict>, checkpoint=PATH)`` per member (at least one).
        trust_checkpoint: load checkpoints holding types outside the allow-list (code they hold runs).
        data_preprocessor: the ensemble's own (default: moves the batch to the device only).
        init_cfg: mmengine's; the members' weights come from their checkpoints.
    """

    #: what ``tensor`` mode returns (the log of the mean probability) and the prediction's own score
    output_kind = 'logits'
    default_score = ENSEMBLE_SCORE

    def __init__(self, members: Sequence[dict], trust_checkpoint: bool = False,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or BaseDataPreprocessor(), init_cfg=init_cfg)
        if isinstance(members, dict) or not members:
            raise ValueError(f'{_NAME}: members must be a non-empty list of dict(config=..., checkpoint=...) or '
                             f'dict(model=..., checkpoint=...), got {members!r}')
        built, sources, classes = [], [], []
        for i, spec in enumerate(members):
            model, source, names = self._build_member(i, spec, trust_checkpoint)
            built.append(model)
            sources.append(source)
            classes.append(names)
        self.members = nn.ModuleList(built)
        self.sources = sources
        counts = [m.head.num_classes for m in built]
        for i, k in enumerate(counts):
            if k != counts[0]:
                raise ValueError(f'{_NAME}: {sources[i]} has {k} classes but {sources[0]} has {counts[0]}; the '
                                 'members of an ensemble classify the same classes')
        named = [(i, c) for i, c in enumerate(classes) if c is not None]
        for i, c in named[1:]:
            j, first = named[0]
            if c != first:
                diff = next((n for n, (a, b) in enumerate(zip(c, first)) if a != b), min(len(c), len(first)))
                raise ValueError(f'{_NAME}: the class names of {sources[i]} differ from those of {sources[j]} at '
                                 f'class {diff} ({c[diff] if diff < len(c) else None!r} vs '
                                 f'{first[diff] if diff < len(first) else None!r}); the members must classify the '
                                 'same classes in the same order')
        self.num_classes = counts[0]
        self.classes = named[0][1] if named else None

    @staticmethod
    def _build_member(i: int, spec, trust: bool):
        """``(model, source, class names)`` of member ``i``."""
        if not isinstance(spec, dict) or ('config' in spec) == ('model' in spec):
            raise ValueError(f'{_NAME}: member {i} must be dict(config=PATH, checkpoint=PATH) or dict(model=<cfg '
                             f'dict>, checkpoint=PATH), got {spec!r}')
        unknown = sorted(set(spec) - {'config', 'model', 'checkpoint', 'cfg_options'})
        if unknown:
            raise KeyError(f'{_NAME}: member {i} has unknown key(s) {unknown}; a member has config or model, '
                           'checkpoint and optionally cfg_options')
        checkpoint = spec.get('checkpoint')
        if 'config' in spec:
            source = f'member {i} ({spec["config"]}, {checkpoint})'
            try:
                cfg = read_config(str(spec['config']))
            except FileNotFoundError as e:
                raise FileNotFoundError(f'{_NAME}: {source}: {e}') from None
        else:
            if not isinstance(spec['model'], dict):
                raise ValueError(f'{_NAME}: member {i}: model must be a model config dict, got {spec["model"]!r}')
            source = f'member {i} ({spec["model"].get("type")}, {checkpoint})'
            cfg = Config(dict(model=_plain(spec['model']), default_scope='mmpretrain'))
        if spec.get('cfg_options'):
            cfg.merge_from_dict(dict(spec['cfg_options']))
        if not checkpoint:
            raise ValueError(f'{_NAME}: {source} has no checkpoint; an ensemble member is a trained model: give '
                             'checkpoint=PATH')
        if not osp.isfile(str(checkpoint)):
            raise FileNotFoundError(f'{_NAME}: {source}: checkpoint {checkpoint!r} does not exist')
        model = build_classifier(cfg, None, f'{_NAME} {source}', _NAME)
        if not isinstance(model, BaseClassifier) or getattr(model, 'head', None) is None \
                or getattr(model.head, 'num_classes', None) is None:
            raise ValueError(f'{_NAME}: {source} is a {type(model).__name__}, not a classifier with a head that has '
                             'num_classes (e.g. ImageClassifier with LinearClsHead)')
        ckpt = load_checkpoint_strict(model, str(checkpoint), map_location='cpu', trust=trust,
                                      owner=f'{_NAME} {source}', trust_option='trust_checkpoint=True',
                                      partial_option=None)
        return model.eval(), source, member_class_names(cfg, ckpt)

    # ------------------------------------------------------------------------------ inference
    def member_outputs(self, inputs, data_samples=None):
        """Each member's ``(source, kind, outputs (N, K))`` on the batch, one member at a time (a generator)."""
        for member, source in zip(self.members, self.sources):
            data = member.data_preprocessor(dict(inputs=inputs, data_samples=data_samples), False)
            yield source, output_kind(member), member(data['inputs'], mode='tensor')

    def statistics(self, inputs, data_samples=None) -> MemberStatistics:
        """The members' statistics on a batch (classes on dim 1)."""
        stats = MemberStatistics(dim=1)
        for source, kind, z in self.member_outputs(inputs, data_samples):
            stats.update(z, kind=kind, source=source)
        return stats

    def forward(self, inputs, data_samples: Optional[List] = None, mode: str = 'tensor'):
        if mode == 'tensor':
            return self.statistics(inputs, data_samples).mean_logits()
        if mode == 'predict':
            return member_predictions(self.statistics(inputs, data_samples), data_samples)
        if mode == 'loss':
            raise ValueError(f'{_NAME} is not trained: train its members (uqseg train-members) and list their '
                             'checkpoints')
        raise RuntimeError(f'Invalid mode "{mode}".')

    def train(self, mode: bool = True):
        """The members stay in eval mode (an ensemble is not trained: dropout and batch norm act as at test)."""
        super().train(mode)
        self.members.eval()
        return self
