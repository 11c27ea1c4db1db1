"""MC dropout (Gal & Ghahramani, 2016): an mmpretrain ``ImageClassifier`` whose test runs ``T`` seeded
stochastic passes with its dropout active.

Spelling (the same state dict as ``ImageClassifier``; the head's dropout trained with the model)::

    model = dict(type='MCDropoutImageClassifier', passes=10, seed=0, backbone=..., neck=...,
                 head=dict(type='OutputLayerClsHead', dropout=0.2, num_classes=10, in_channels=64,
                           loss=dict(type='CrossEntropyLoss')))

Training is ``ImageClassifier``'s (dropout active in train mode, as always). At test (``predict``,
and ``tensor`` mode outside training) the model's dropout modules (``torch.nn``'s dropouts and
mmcv's ``DropPath`` with ``p > 0``: :mod:`uqseg.engine.mc_dropout`, the rule both front ends
share) are put in train mode for ``passes`` passes, pass ``t`` under ``torch.random.fork_rng``
seeded with ``seed + t`` (reproducible, and the global RNG is left as it was), everything else
staying in eval mode (batch norm uses its running statistics).
Where every dropout module is inside the head the features are computed once and only the head
runs ``T`` times. The passes feed a :class:`~uqseg.core.member_statistics.MemberStatistics`, so
the predictions are those of an ensemble (:func:`~.member_outputs.member_predictions`):
``pred_score`` the mean probability, ``pred_logits`` its log, the member maps, metainfo
``members=T``, ``output_kind='logits'``, ``default_score='mutual-information'``; ``tensor`` mode
returns ``mean_logits()`` (what ``uqseg dump-outputs`` collects).

Refused when built, naming the class: ``passes < 2``, and a model without dropout (give its head
``OutputLayerClsHead(dropout=p)``; mmpretrain's ``LinearClsHead`` has none).
"""
from __future__ import annotations

from typing import List, Optional

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from ....core.default_scores import MEMBER_OWN_SCORE
from ....core.member_statistics import MemberStatistics
from ....engine.mc_dropout import active_dropout, check_passes, dropout_modules, named_dropout_modules, seeded
from ...outputs import head_output_kind
from .member_outputs import member_predictions

__all__ = ['MCDropoutImageClassifier']


@MODELS.register_module()
class MCDropoutImageClassifier(ImageClassifier):
    """``ImageClassifier`` with MC-dropout inference (see the module docstring).

    Args:
        passes: the number of stochastic passes ``T >= 2`` (default 10).
        seed: pass ``t`` runs with the RNG seeded ``seed + t`` (default 0).
        **kwargs: ``ImageClassifier``'s arguments.
    """

    def __init__(self, *args, passes: int = 10, seed: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        check_passes(passes, seed, name)
        self.passes, self.seed = passes, seed
        found = named_dropout_modules(self)
        if not found:
            raise ValueError(f'{name}: the model ({type(self.backbone).__name__} + {type(self.head).__name__}) has no '
                             "dropout module with p > 0; give its head dropout: head=dict(type='OutputLayerClsHead', "
                             'dropout=0.2, ...) (trained with it), or a backbone with dropout')
        self._head_only = all(n.startswith('head.') for n, _ in found)

    #: what ``tensor`` mode returns at test (the log of the mean probability) and the prediction's own score
    output_kind = 'logits'
    default_score = MEMBER_OWN_SCORE

    def statistics(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> MemberStatistics:
        """The statistics of the ``T`` seeded passes on ``inputs``, dropout active, the rest in eval mode."""
        stats = MemberStatistics(dim=1)
        kind = head_output_kind(self)
        feats = self.extract_feat(inputs) if self._head_only else None
        with active_dropout(dropout_modules(self)):
            for t in range(self.passes):
                with seeded(self.seed + t, inputs.device):
                    z = self.head(feats) if feats is not None else super().forward(inputs, mode='tensor')
                stats.update(z, kind=kind, source=f'{type(self).__name__} pass {t}')
        return stats

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None, mode: str = 'tensor'):
        if mode == 'tensor' and not self.training:
            return self.statistics(inputs).mean_logits()
        return super().forward(inputs, data_samples, mode)

    def predict(self, inputs: torch.Tensor, data_samples: Optional[List] = None, **kwargs) -> List:
        return member_predictions(self.statistics(inputs), data_samples)
