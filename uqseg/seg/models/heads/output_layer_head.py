"""Any mmseg decode head with its 1x1 classifier ``conv_seg`` replaced by a uqseg output layer.

Spelling (:mod:`.head_wrapper`)::

    decode_head=dict(type='OutputLayerHead', head=dict(type='UPerHead', ...),
                     output_layer=dict(type='EDLLayer', evidence='relu'),
                     loss_decode=dict(type='EDLLoss', kl_anneal_iters=2000))

The head is built as configured, then its ``conv_seg`` is replaced by
``build_output_layer(output_layer)`` with ``in_channels=head.channels`` and
``num_classes=head.out_channels`` (:mod:`uqseg.registry`). The layer keeps the name, so its
checkpoint keys are ``decode_head.conv_seg.*`` (an EDL layer has ``weight`` / ``bias`` of a
1x1 conv: a plain head's checkpoint loads into it), and it owns its initialisation
(the ``Normal(std=0.01)`` override of ``conv_seg`` in mmseg's ``init_cfg`` is removed, so
``init_weights`` keeps the layer's own initialisation; a ``Pretrained`` init of the head loads
into it). Everything else is the head's own: ``forward``, ``cls_seg`` (dropout, then the
layer), ``loss_by_feat`` (resize, then ``loss_decode``), ``predict``, so mmseg's argmax,
softmax, ``slide`` inference, flip and resize see the layer's channels, which act as
log-probabilities (EDL: ``log alpha``; DisMax: ``L / T``). The segmentor that builds the head
writes the head's output kind, layer and own score into the metainfo of every sample it predicts
(:func:`uqseg.seg.outputs.record_output`), where metrics and hooks read them.

Heads that do not classify through ``conv_seg`` are refused, naming the head: mask
classification heads (MaskFormer, Mask2Former: not ``BaseDecodeHead`` subclasses; SAN,
Segmenter's mask transformer, PointHead: they delete ``conv_seg``) and any head whose
``forward`` never calls the layer (checked at every forward). Which loss a layer trains with:
EDL needs :class:`~uqseg.core.edl_loss.EDLLoss`, DisMax / IsoMax+ need
:class:`~uqseg.core.dismax_loss.DisMaxLoss` (others may sit beside it). Before every loss the head
gives the EDL loss the iteration (mmengine's MessageHub ``iter``, restored on resume) and the
layer's stage (TEDL).
"""
from __future__ import annotations

from typing import Optional

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import nn

from ....core.layer_losses import LAYER_LOSSES, prepare_edl_losses
from ....engine.runtime_info import current_iter
from ....registry import build_output_layer
from ...outputs import record_output, segmentor_being_built
from .head_wrapper import DecodeHeadWrapper

__all__ = ['OutputLayerHead', 'MASK_CLASSIFICATION_HINT']

MASK_CLASSIFICATION_HINT = (
    'only heads that classify pixels through their 1x1 conv_seg take an output layer; mask-classification '
    'heads (MaskFormer, Mask2Former, SAN, Segmenter mask transformer) classify queries, and cascade point '
    'heads (PointHead) classify sampled points with their own fc')



@MODELS.register_module()
class OutputLayerHead(DecodeHeadWrapper):
    """A decode head whose ``conv_seg`` is a uqseg output layer (see the module docstring).

    Args:
        head: the decode head, ``dict(type='FCNHead', ...)``; it needs ``out_channels >= 2``
            (a softmax head: for a binary task ``num_classes=2, out_channels=2``).
        output_layer: ``dict(type='EDLLayer' | 'DisMaxLayer' | 'IsoMaxPlusLayer', ...)``;
            ``in_channels`` / ``num_classes`` come from the head (given, they must agree).
        **overrides: entries of ``head`` (see :mod:`.head_wrapper`).
    """

    @classmethod
    def wrapped_class(cls, base: type) -> type:
        if isinstance(base, type) and not issubclass(base, BaseDecodeHead):
            raise TypeError(f'OutputLayerHead: {base.__name__} is not a BaseDecodeHead with a conv_seg classifier; '
                            f'{MASK_CLASSIFICATION_HINT}')
        return super().wrapped_class(base)

    def __init__(self, head: dict, output_layer: Optional[dict] = None, **overrides) -> None:
        super().__init__(head, **overrides)
        name = self._wrapped.__name__
        old = getattr(self, 'conv_seg', None)
        if not isinstance(old, nn.Conv2d):
            raise TypeError(f'OutputLayerHead: {name} has no conv_seg classifier (conv_seg={type(old).__name__}); '
                            f'{MASK_CLASSIFICATION_HINT}')
        if old.kernel_size != (1, 1) or old.in_channels != self.channels or old.out_channels != self.out_channels:
            raise TypeError(f'OutputLayerHead: {name}.conv_seg is {old}, not the 1x1 conv from '
                            f'channels={self.channels} to out_channels={self.out_channels} that an output layer '
                            'replaces')
        if not isinstance(output_layer, dict) or 'type' not in output_layer:
            raise ValueError("OutputLayerHead needs output_layer=dict(type='EDLLayer' | 'DisMaxLayer' | "
                             f"'IsoMaxPlusLayer', ...), got output_layer={output_layer!r}")
        cfg = dict(output_layer)
        if self.out_channels < 2:
            raise ValueError(f"OutputLayerHead: output_layer type={cfg['type']!r} needs two or more output channels "
                             f'(a softmax over classes), but {name} has out_channels={self.out_channels} '
                             '(a one-channel sigmoid head). For a binary task set num_classes=2 and out_channels=2')
        for key, have in (('in_channels', self.channels), ('num_classes', self.out_channels)):
            given = cfg.pop(key, None)
            if given is not None and int(given) != have:
                what = 'channels' if key == 'in_channels' else 'out_channels / num_classes'
                raise ValueError(f'OutputLayerHead: output_layer.{key}={given} but {name} has {what}={have}; '
                                 f'leave output_layer.{key} out (it comes from the head)')
        self.conv_seg = build_output_layer(dict(cfg, in_channels=self.channels, num_classes=self.out_channels))
        self.output_layer_name = type(self.conv_seg).__name__
        self._drop_conv_seg_init()
        self._check_losses()
        self._layer_called = False
        self._warned = False
        self.conv_seg.register_forward_pre_hook(self._mark_layer_called)
        segmentor = segmentor_being_built()
        if segmentor is not None:  # its predicted samples carry this head's output (uqseg.seg.outputs)
            record_output(segmentor)

    # ------------------------------------------------------------------------------ checks
    @property
    def losses(self) -> list:
        return list(self.loss_decode) if isinstance(self.loss_decode, nn.ModuleList) else [self.loss_decode]

    def _check_losses(self) -> None:
        for layer_type, loss_type in LAYER_LOSSES:
            if isinstance(self.conv_seg, layer_type):
                found = [m for m in self.losses if isinstance(m, loss_type)]
                if len(found) != 1:
                    raise ValueError(
                        f'OutputLayerHead: {self.output_layer_name} trains with {loss_type.__name__}; loss_decode must '
                        f'hold exactly one, found {len(found)} among {[type(m).__name__ for m in self.losses]}. Write '
                        f"loss_decode=dict(_delete_=True, type='{loss_type.__name__}', ...) on a base config")
        for m in self.losses:
            for layer_type, loss_type in LAYER_LOSSES:
                if isinstance(m, loss_type) and not isinstance(self.conv_seg, layer_type):
                    raise ValueError(f'OutputLayerHead: loss_decode {loss_type.__name__} needs a '
                                     f'{layer_type.__name__}, not {self.output_layer_name}')

    def _mark_layer_called(self, module, args) -> None:
        self._layer_called = True

    # ------------------------------------------------------------------------------ mmseg interface
    def _drop_conv_seg_init(self) -> None:
        """Remove ``override=dict(name='conv_seg')`` (mmseg's ``Normal(std=0.01)``) from the head's
        ``init_cfg``: the layer initialised itself when built, and a ``Pretrained`` init_cfg of
        the head still loads into it."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        for cfg in cfgs:
            if not isinstance(cfg, dict) or 'override' not in cfg:
                continue
            ov = cfg['override']
            kept = [o for o in (ov if isinstance(ov, list) else [ov]) if o.get('name') != 'conv_seg']
            if not kept:
                del cfg['override']
            else:
                cfg['override'] = kept if isinstance(ov, list) else kept[0]

    def forward(self, inputs):
        self._layer_called = False
        out = super().forward(inputs)
        if not self._layer_called:
            raise TypeError(f'OutputLayerHead: {self._wrapped.__name__}.forward does not classify through conv_seg '
                            f'(cls_seg), so {self.output_layer_name} would be ignored; {MASK_CLASSIFICATION_HINT}')
        return out

    @property
    def output_kind(self) -> str:
        """What the channels are now (TEDL: 'logits' in stage 1)."""
        return self.conv_seg.output_kind

    def loss_by_feat(self, seg_logits: torch.Tensor, batch_data_samples) -> dict:
        self._warned = prepare_edl_losses(self.conv_seg, self.losses, current_iter(), self.training, self._warned,
                                          type(self).__name__)
        return super().loss_by_feat(seg_logits, batch_data_samples)
