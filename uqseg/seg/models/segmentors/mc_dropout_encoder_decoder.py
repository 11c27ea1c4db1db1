"""MC dropout (Gal & Ghahramani, 2016) on any mmseg ``EncoderDecoder``: dropout stays on at test.

``MCDropoutEncoderDecoder`` is mmseg's ``EncoderDecoder`` (same state dict: a plain checkpoint
loads) whose ``predict`` runs ``passes`` stochastic forwards with the dropout modules
(``nn.Dropout`` / ``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout``, mmcv's
``DropPath``) in train mode and everything else (BatchNorm) in eval mode; mmseg's ``TestLoop``
calls ``model.eval()``, so this is done inside the model (open-mmlab/mmsegmentation#2441). Pass
``t`` of every batch runs under ``torch.random.fork_rng`` seeded ``seed + t``: reproducible for a
seed, different across seeds, and the global RNG is left as it was. Each pass's outputs (whole or
slide inference, then ``postprocess_result``'s crop and resize) are fed to one streaming
:class:`~uqseg.core.member_statistics.MemberStatistics` per image (:mod:`.member_samples`), so
the predicted sample holds the mixture and the member maps (``seg_mutual_information``, ...),
as an ``EnsembleSegmentor``'s. Training is ``EncoderDecoder``'s (dropout as usual)::

    model = dict(type='MCDropoutEncoderDecoder', passes=10, seed=0,
                 decode_head=dict(dropout_ratio=0.1, ...), ...)

A model without dropout (or with every ``p = 0``) is refused: mmseg's decode heads apply
``dropout_ratio`` before their classifier ``conv_seg`` (also when a uqseg output layer replaces it,
``OutputLayerHead``), so setting it, and training with it, gives dropout before the classifier.
"""
from __future__ import annotations

from typing import Optional

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from ....core.scores import PROBS
from ....engine.mc_dropout import active_dropout, check_passes, dropout_modules, seeded
from ...outputs import head_output, members_output
from .member_samples import add_member, new_statistics, write_members

__all__ = ['MCDropoutEncoderDecoder', 'dropout_modules']


@MODELS.register_module()
class MCDropoutEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` whose test prediction mixes ``passes`` dropout passes (module docstring).

    Args:
        passes: the number of stochastic passes ``T >= 2``.
        seed: pass ``t`` runs with the seed ``seed + t``.
        **kwargs: ``EncoderDecoder``'s arguments.
    """

    def __init__(self, *args, passes: int = 10, seed: int = 0, **kwargs):
        check_passes(passes, seed, 'MCDropoutEncoderDecoder')
        super().__init__(*args, **kwargs)
        self.passes, self.seed = passes, seed
        if not dropout_modules(self):
            raise ValueError(
                f'MCDropoutEncoderDecoder: the model ({type(self.backbone).__name__} + '
                f'{type(self.decode_head).__name__}) has no dropout module with p > 0, so its passes would all be '
                "equal: give the decode head a dropout_ratio (e.g. decode_head=dict(dropout_ratio=0.1); mmseg's "
                'decode heads apply it before the classifier conv_seg, also under OutputLayerHead) and train the '
                'model with it')

    def member_output(self):
        """What its samples hold (:func:`uqseg.seg.outputs.members_output`)."""
        kind = head_output(self).kind if self.out_channels > 1 else PROBS
        return members_output(self.source, (kind,) * self.passes)

    @property
    def source(self) -> str:
        return f'MCDropoutEncoderDecoder ({self.passes} passes of {head_output(self).source})'

    def predict(self, inputs: torch.Tensor, data_samples: Optional[list] = None) -> list:
        """``passes`` seeded dropout passes, mixed per image (module docstring)."""
        if data_samples is None:
            shape = tuple(inputs.shape[2:])
            data_samples = [SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                                                        padding_size=[0, 0, 0, 0])) for _ in range(len(inputs))]
        kind = head_output(self).kind
        stats = new_statistics(len(inputs))
        dropouts = dropout_modules(self)
        for t in range(self.passes):
            samples = [SegDataSample(metainfo=s.metainfo) for s in data_samples]
            with seeded(self.seed + t, inputs.device), active_dropout(dropouts):
                logits = self.inference(inputs, [s.metainfo for s in samples])
            add_member(stats, self.postprocess_result(logits, samples), kind, f'pass {t}')
            del logits
        threshold = getattr(self.decode_head, 'threshold', None)
        for sample, st in zip(data_samples, stats):
            write_members(sample, st, self.source, threshold)
        return data_samples
