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

from typing import List, Optional, Sequence

from mmengine.model import BaseDataPreprocessor, BaseModel
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.registry import DATASETS, MODELS
from torch import nn

from ....core.default_scores import MEMBER_OWN_SCORE
from ....core.member_statistics import MemberStatistics
from ....engine.checkpoint import load_checkpoint_strict
from ....engine.members import MemberSpec, check_member_checkpoint, check_member_classes, checkpoint_classes
from ....engine.members import member_specs as engine_member_specs
from ...outputs import build_classifier, output_kind
from .member_outputs import member_predictions

__all__ = ['EnsembleClassifier']

_NAME = 'EnsembleClassifier'


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
    default_score = MEMBER_OWN_SCORE

    def __init__(self, members: Sequence[dict], trust_checkpoint: bool = False,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or BaseDataPreprocessor(), init_cfg=init_cfg)
        specs = engine_member_specs(members, _NAME, 'mmpretrain', DATASETS.get)
        built = [self._build_member(spec, trust_checkpoint) for spec in specs]
        self.members = nn.ModuleList(built)
        self.sources = [s.name for s in specs]
        self.classes = check_member_classes(specs, [m.head.num_classes for m in built], _NAME)
        self.num_classes = built[0].head.num_classes

    @staticmethod
    def _build_member(spec: MemberSpec, trust: bool):
        """Member ``spec`` built (its top-level data preprocessor merged in, as the Runner does) and
        loaded strictly; ``spec.classes`` completed from its checkpoint."""
        checkpoint = check_member_checkpoint(spec, _NAME)
        model = build_classifier(spec.cfg, None, f'{_NAME} {spec.name}', _NAME)
        if not isinstance(model, BaseClassifier) or getattr(model, 'head', None) is None \
                or getattr(model.head, 'num_classes', None) is None:
            raise ValueError(f'{_NAME}: {spec.name} is a {type(model).__name__}, not a classifier with a head that '
                             'has num_classes (e.g. ImageClassifier with LinearClsHead)')
        ckpt = load_checkpoint_strict(model, checkpoint, map_location='cpu', trust=trust,
                                      owner=f'{_NAME} {spec.name}', trust_option='trust_checkpoint=True',
                                      partial_option=None)
        if spec.classes is None:
            spec.classes = checkpoint_classes(ckpt)
        return model.eval()

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
