"""MC dropout (Gal & Ghahramani, 2016): an mmpretrain ``ImageClassifier`` whose test runs ``T`` seeded
stochastic passes with its dropout active.

Spelling (the same state dict as ``ImageClassifier``; the head's dropout trained with the model)::

    model = dict(type='MCDropoutImageClassifier', passes=10, seed=0, backbone=..., neck=...,
                 head=dict(type='OutputLayerClsHead', dropout=0.2, num_classes=10, in_channels=64,
                           loss=dict(type='CrossEntropyLoss')))

Training is ``ImageClassifier``'s (dropout active in train mode, as always). At test (``predict``,
and ``tensor`` mode outside training) the model's dropout modules (``nn.Dropout`` and the other
``torch.nn`` dropouts with ``p > 0``) are put in train mode for ``passes`` passes, pass ``t``
under ``torch.random.fork_rng`` seeded with ``seed + t`` (reproducible, and the global RNG is
left as it was), everything else staying in eval mode (batch norm uses its running statistics).
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
from torch import nn

from ....core.member_statistics import MemberStatistics
from ...outputs import head_output_kind
from .member_outputs import ENSEMBLE_SCORE, member_predictions

__all__ = ['MCDropoutImageClassifier', 'dropout_modules']


def dropout_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every ``torch.nn`` dropout module of ``model`` with ``p > 0``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


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
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 2:
            raise ValueError(f'{name}: passes must be an int >= 2 (T stochastic passes), got {passes!r}')
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f'{name}: seed must be an int, got {seed!r}')
        self.passes, self.seed = passes, seed
        found = dropout_modules(self)
        if not found:
            raise ValueError(f'{name}: the model ({type(self.backbone).__name__} + {type(self.head).__name__}) has no '
                             "dropout module with p > 0; give its head dropout: head=dict(type='OutputLayerClsHead', "
                             'dropout=0.2, ...) (trained with it), or a backbone with dropout')
        self._head_only = all(n.startswith('head.') for n, _ in found)

    #: what ``tensor`` mode returns at test (the log of the mean probability) and the prediction's own score
    output_kind = 'logits'
    default_score = ENSEMBLE_SCORE

    def statistics(self, inputs: torch.Tensor, data_samples: Optional[List] = None) -> MemberStatistics:
        """The statistics of the ``T`` seeded passes on ``inputs``, dropout active, the rest in eval mode."""
        drops = [m for _, m in dropout_modules(self)]
        modes = [m.training for m in drops]
        stats = MemberStatistics(dim=1)
        kind = head_output_kind(self)
        devices = [inputs.device] if inputs.device.type == 'cuda' else []
        feats = self.extract_feat(inputs) if self._head_only else None
        try:
            for m in drops:
                m.train()
            for t in range(self.passes):
                with torch.random.fork_rng(devices=devices):
                    torch.random.default_generator.manual_seed(self.seed + t)
                    if devices:  # the inputs' GPU, which need not be the current one
                        with torch.cuda.device(inputs.device):
                            torch.cuda.manual_seed(self.seed + t)
                    z = self.head(feats) if feats is not None else super().forward(inputs, mode='tensor')
                stats.update(z, kind=kind, source=f'{type(self).__name__} pass {t}')
        finally:
            for m, mode in zip(drops, modes):
                m.train(mode)
        return stats

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None, mode: str = 'tensor'):
        if mode == 'tensor' and not self.training:
            return self.statistics(inputs).mean_logits()
        return super().forward(inputs, data_samples, mode)

    def predict(self, inputs: torch.Tensor, data_samples: Optional[List] = None, **kwargs) -> List:
        return member_predictions(self.statistics(inputs), data_samples)
