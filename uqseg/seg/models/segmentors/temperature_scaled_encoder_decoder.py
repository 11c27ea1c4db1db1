"""Post-hoc temperature scaling (Guo et al., 2017) of any mmseg ``EncoderDecoder``.

``TemperatureScaledEncoderDecoder`` is mmseg's ``EncoderDecoder`` whose test-time logits are
divided by ``T`` inside ``encode_decode``, the one method that both ``whole`` and ``slide``
inference call per window, before any averaging, before mmseg's softmax / sigmoid in
``postprocess_result`` and before a TTA model's flip merge: every metric, hook and tool then reads
the calibrated model. Training is untouched (``loss`` does not call ``encode_decode``).

One line in a config, for a known ``T`` (a number, or one per class)::

    model = dict(type='TemperatureScaledEncoderDecoder', temperature=1.7)

``T`` is the buffer ``temperature``, not saved by training (so a training checkpoint of a
temperature-scaled model, e.g. an LDL run's, holds none and the config's ``T`` stands): only
``uqseg calibrate`` writes it, as the state-dict key ``temperature``, and loading such a
checkpoint sets ``T`` from it (with a warning if the config gave another). ``temperature=None``
requires ``T`` from a checkpoint: inference refuses to run until one was loaded. ``forward`` in
``tensor`` mode (``_forward``, used by export and FLOP tools) returns the head's raw logits. Heads whose
channels are not logits (an EDL head's ``log alpha``) are refused. One-channel (sigmoid) heads:
``T`` keeps the 0.5 decision boundary, so predictions change only if the head's ``threshold`` is
not 0.5 (mmseg's default is 0.3). Choices: ``docs/temperature_scaling.md``.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from ....core.temperature import TEMPERATURE_KEY
from ....core.temperature_buffer import TemperatureBuffer
from ....core.temperature_kinds import check_temperature_kind
from ...outputs import model_output

__all__ = ['TemperatureScaledEncoderDecoder', 'TEMPERATURE_KEY', 'check_temperature_scalable']


def check_temperature_scalable(segmentor, owner: str) -> None:
    """Refuse, naming ``owner``, a segmentor whose head's channels temperature scaling does not
    apply to (an EDL head's ``log alpha``): the one rule,
    :func:`uqseg.core.temperature_kinds.check_temperature_kind`."""
    out = model_output(segmentor)
    check_temperature_kind(out.kind, owner, f'{out.source} outputs')


@MODELS.register_module()
class TemperatureScaledEncoderDecoder(TemperatureBuffer, EncoderDecoder):
    """``EncoderDecoder`` whose test-time logits are ``logits / T``; see the module docstring.

    Args:
        temperature: ``T > 0`` (a number, or a list with one value per class: vector scaling
            without bias), or None to require it from a checkpoint. Default 1 (identity until a
            checkpoint brings one).
        **kwargs: ``EncoderDecoder``'s arguments.
    """

    calibration_tool = 'uqseg calibrate'

    def __init__(self, *args, temperature: Union[float, Sequence[float], None] = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_temperature(temperature, self.out_channels)
        check_temperature_scalable(self, type(self).__name__)

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: List[dict]) -> torch.Tensor:
        check_temperature_scalable(self, type(self).__name__)  # a TEDL head may have turned evidential
        return self.scale_logits(super().encode_decode(inputs, batch_img_metas))


