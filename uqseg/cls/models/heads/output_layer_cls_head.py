"""mmpretrain's ``LinearClsHead`` with its ``fc`` replaced by a uqseg output layer, and optional dropout.

Spelling::

    head=dict(type='OutputLayerClsHead', num_classes=10, in_channels=512,
              output_layer=dict(type='EDLLayer', evidence='relu'),
              loss=dict(type='EDLLoss', kl_anneal_iters=2000))
    head=dict(type='OutputLayerClsHead', num_classes=10, in_channels=512, dropout=0.2,
              loss=dict(type='CrossEntropyLoss'))   # LinearClsHead + dropout (MC dropout)

``dropout=p`` puts an ``nn.Dropout(p)`` before ``fc`` (no parameters: the state dict is the same),
active in training as usual and at test in ``MCDropoutImageClassifier``'s passes; mmpretrain's
``LinearClsHead`` has none. ``output_layer=None`` keeps ``LinearClsHead``'s ``nn.Linear`` ``fc``
(plain logits, output kind ``'logits'``, own score ``'max-prob'``).

``fc`` is ``build_output_layer(dict(output_layer, in_channels=in_channels, num_classes=num_classes))``
(:mod:`uqseg.registry`; ``in_channels`` / ``num_classes`` given in ``output_layer`` must agree with
the head's). The layer keeps the name, so its checkpoint keys are ``head.fc.*``: a plain
``LinearClsHead``'s ``fc.weight`` ``(K, D)`` / ``fc.bias`` load into an ``EDLLayer`` (reshaped to its
1x1-conv weight); the distance layers have other parameters. ``init_weights`` runs mmengine's
initialisation (the default ``Normal(layer='Linear')`` does not touch the layer), then the layer's
own ``reset_parameters`` (not after a ``Pretrained`` init_cfg of the head, which loaded into it).

The head's outputs ``z`` (``(N, K)``; the head needs ``(N, D)`` features: pool maps with
``neck=dict(type='GlobalAveragePooling')``) act as log-probabilities, as in the mmseg
``OutputLayerHead``: ``predict`` sets ``pred_score = softmax(z)`` (EDL ``alpha / S``, DisMax / IsoMax+
``softmax(L / T)``), ``pred_label``, the raw row ``pred_logits = z`` and the metainfo
``output_kind`` / ``default_score`` of the layer (TEDL stage 1: ``'logits'`` / ``'max-prob'``).

Which loss a layer trains with (checked when the head is built, errors naming the head): an
``EDLLayer`` needs ``EDLLoss``, a ``DisMaxLayer`` / ``IsoMaxPlusLayer`` ``DisMaxLoss``, and neither
loss goes with the other layer; the loss must be :mod:`uqseg.cls.models.losses`'s (mmpretrain's call,
no ignore index), not the mmseg registration of the same name. Before every loss the head gives an
``EDLLoss`` the iteration (mmengine's MessageHub ``iter``, restored on resume) and the layer's
stage (``evidential = output_kind == 'log_alpha'``: TEDL's cross-entropy stage 1).

Sizes: features of another width than ``in_channels`` are an error naming both (the layer's
:func:`~uqseg.core.output_layers.check_features`); a runner's training loop on a dataset with more
``metainfo['classes']`` than ``num_classes`` is refused when it sets the model to training, before the
first batch (:mod:`uqseg.cls.models.num_classes`).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from mmengine.model import PretrainedInit
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ....core.dismax_loss import DisMaxLoss as _CoreDisMaxLoss
from ....core.edl_loss import EDLLoss as _CoreEDLLoss
from ....core.layer_losses import LAYER_LOSSES, prepare_edl_losses
from ....engine.runtime_info import current_iter
from ....registry import build_output_layer
from ..losses import DisMaxLoss, EDLLoss
from ..num_classes import check_num_classes

__all__ = ['OutputLayerClsHead']

#: each layer family, the core loss it trains with (core.layer_losses) and that loss's mmpretrain registration
_REGISTERED = {_CoreEDLLoss: EDLLoss, _CoreDisMaxLoss: DisMaxLoss}
_LAYER_LOSS = tuple((layer, loss, _REGISTERED[loss]) for layer, loss in LAYER_LOSSES)


def _is_pretrained(init_cfg) -> bool:
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') in ('Pretrained', PretrainedInit) for c in cfgs)


@MODELS.register_module()
class OutputLayerClsHead(LinearClsHead):
    """A ``LinearClsHead`` whose ``fc`` is a uqseg output layer (see the module docstring).

    Args:
        num_classes, in_channels: as ``LinearClsHead`` (``num_classes >= 2``).
        output_layer: ``dict(type='EDLLayer' | 'DisMaxLayer' | 'IsoMaxPlusLayer', ...)``, or None for
            ``LinearClsHead``'s linear ``fc`` (plain logits).
        dropout: the probability of the ``nn.Dropout`` before ``fc``, in [0, 1) (default 0: none).
        **kwargs: ``LinearClsHead``'s (``loss``, ``topk``, ``cal_acc``, ``init_cfg``).
    """

    def __init__(self, num_classes: int, in_channels: int, output_layer: Optional[dict] = None, dropout: float = 0.0,
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, **kwargs)
        name = type(self).__name__
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f'{name}: dropout must be a probability in [0, 1), got {dropout!r}')
        self.dropout = nn.Dropout(float(dropout)) if dropout > 0 else None
        self.output_layer_name = None
        self._warned = False
        if output_layer is None:  # LinearClsHead's fc
            self._check_loss()
            return
        if not isinstance(output_layer, dict) or 'type' not in output_layer:
            raise ValueError(f"{name} needs output_layer=dict(type='EDLLayer' | 'DisMaxLayer' | 'IsoMaxPlusLayer', "
                             f'...) or None (a linear fc), got output_layer={output_layer!r}')
        cfg = dict(output_layer)
        for key, have in (('in_channels', self.in_channels), ('num_classes', self.num_classes)):
            given = cfg.pop(key, None)
            if given is not None and int(given) != int(have):
                raise ValueError(f'{name}: output_layer.{key}={given} but the head has {key}={have}; leave '
                                 f'output_layer.{key} out (it comes from the head)')
        self.fc = build_output_layer(dict(cfg, in_channels=self.in_channels, num_classes=self.num_classes))
        self.output_layer_name = type(self.fc).__name__
        self._check_loss()

    # ------------------------------------------------------------------------------ checks
    def _check_loss(self) -> None:
        name, loss, layer = type(self).__name__, self.loss_module, type(self.fc).__name__
        for layer_type, core_loss, _ in _LAYER_LOSS:
            if isinstance(self.fc, layer_type) and not isinstance(loss, core_loss):
                raise ValueError(f'{name}: {layer} trains with {core_loss.__name__}, but the head\'s '
                                 f"loss is {type(loss).__name__}: give loss=dict(type='{core_loss.__name__}', ...) "
                                 f"(on a base config: loss=dict(_delete_=True, type='{core_loss.__name__}', ...))")
        for layer_type, core_loss, cls_loss in _LAYER_LOSS:
            if isinstance(loss, core_loss) and not isinstance(self.fc, layer_type):
                raise ValueError(f'{name}: loss {core_loss.__name__} needs an output layer of type '
                                 f'{layer_type.__name__}, not {layer}')
            if isinstance(loss, core_loss) and not isinstance(loss, cls_loss):
                raise TypeError(f'{name}: the loss is {type(loss).__module__}.{type(loss).__name__}, the mmseg '
                                f"registration (mmseg's call, label 255 ignored), not mmpretrain's: build the model "
                                f"with default_scope='mmpretrain' or write loss=dict(type='mmpretrain."
                                f"{core_loss.__name__}', ...)")

    # ------------------------------------------------------------------------------ mmpretrain interface
    @property
    def output_kind(self) -> str:
        """What the outputs are now (TEDL stage 1: 'logits'; a linear fc: 'logits')."""
        return getattr(self.fc, 'output_kind', 'logits')

    @property
    def default_score(self) -> str:
        return getattr(self.fc, 'default_score', 'max-prob')

    def init_weights(self) -> None:
        first = not self.is_init
        super().init_weights()
        if first and not _is_pretrained(self.init_cfg) and self.output_layer_name is not None:
            self.fc.reset_parameters()

    def train(self, mode: bool = True):
        """``nn.Module.train``; entering training inside a runner's training loop first checks ``num_classes``
        against the training dataset's classes (:func:`~uqseg.cls.models.num_classes.check_num_classes`):
        the loop calls ``model.train()`` before the first batch reaches ``ClsDataPreprocessor``, whose one-hot
        targets would fail on a too small ``num_classes`` without naming it."""
        if mode:
            check_num_classes(self.num_classes, type(self).__name__)
        return super().train(mode)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        x = self.pre_logits(feats)
        if x.dim() != 2:
            raise ValueError(f'{type(self).__name__} needs (N, {self.in_channels}) features, got {tuple(x.shape)}: '
                             "pool feature maps first (neck=dict(type='GlobalAveragePooling'))")
        return self.fc(x if self.dropout is None else self.dropout(x))

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample], **kwargs) -> dict:
        self._prepare_loss()
        return super().loss(feats, data_samples, **kwargs)

    def _prepare_loss(self) -> None:
        """Give an ``EDLLoss`` the iteration and the layer's stage (as the mmseg head does)."""
        self._warned = prepare_edl_losses(self.fc, [self.loss_module], current_iter(), self.training, self._warned,
                                          type(self).__name__)

    def _get_predictions(self, cls_score: torch.Tensor, data_samples) -> List[DataSample]:
        out = super()._get_predictions(cls_score, data_samples)
        meta = dict(output_kind=self.output_kind, default_score=self.default_score)
        for sample, z in zip(out, cls_score.detach()):
            sample.set_field(z, 'pred_logits', dtype=torch.Tensor)
            sample.set_metainfo(meta)
        return out
