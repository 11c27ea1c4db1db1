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
``tools/calibrate.py`` writes it, as the state-dict key ``temperature``, and loading such a
checkpoint sets ``T`` from it (with a warning if the config gave another). ``temperature=None``
requires ``T`` from a checkpoint: inference refuses to run until one was loaded. ``forward`` in
``tensor`` mode (``_forward``, used by export and FLOP tools) returns the head's raw logits. Heads whose
channels are not logits (an EDL head's ``log alpha``) are refused. One-channel (sigmoid) heads:
``T`` keeps the 0.5 decision boundary, so predictions change only if the head's ``threshold`` is
not 0.5 (mmseg's default is 0.3). Choices: ``docs/temperature_scaling.md``.
"""
from __future__ import annotations

import warnings
from typing import List, Sequence, Union

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from ....core.temperature import TEMPERATURE_KEY, apply_temperature, check_temperature
from ...outputs import model_output

__all__ = ['TemperatureScaledEncoderDecoder', 'TEMPERATURE_KEY', 'check_temperature_scalable']


def check_temperature_scalable(segmentor, owner: str) -> None:
    """Refuse, naming ``owner``, a segmentor whose head's channels are not logits (an EDL head's
    ``log alpha``): temperature scaling divides logits."""
    out = model_output(segmentor)
    if out.kind == 'log_alpha':
        raise ValueError(f'{owner}: {out.source} outputs log alpha (evidential), not logits; temperature '
                         'scaling divides logits and does not apply to it')


@MODELS.register_module()
class TemperatureScaledEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` whose test-time logits are ``logits / T``; see the module docstring.

    Args:
        temperature: ``T > 0`` (a number, or a list with one value per class: vector scaling
            without bias), or None to require it from a checkpoint. Default 1 (identity until a
            checkpoint brings one).
        **kwargs: ``EncoderDecoder``'s arguments.
    """

    def __init__(self, *args, temperature: Union[float, Sequence[float], None] = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        if temperature is None:
            t = torch.tensor(float('nan'))
        else:
            t = check_temperature(temperature, f'{name}: temperature').float()
        self.temperature_required = temperature is None
        self.register_buffer(TEMPERATURE_KEY, t, persistent=False)
        self._check_temperature_shape(t, f'{name}: temperature')
        check_temperature_scalable(self, name)

    def _check_temperature_shape(self, t: torch.Tensor, owner: str) -> None:
        k = self.out_channels
        if t.dim() == 1 and t.numel() != k:
            raise ValueError(f'{owner}: {t.numel()} per-class temperatures for a head of {k} output channels')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + TEMPERATURE_KEY
        if key in state_dict:  # written by tools/calibrate.py (the buffer itself is not persistent)
            value = check_temperature(state_dict.pop(key), f"the checkpoint's {key!r}").float()
            self._check_temperature_shape(value, f"the checkpoint's {key!r}")
            own = self.temperature
            if not self.temperature_required and (own.shape != value.shape or not torch.equal(own.cpu(), value)):
                warnings.warn(f'{type(self).__name__}: the checkpoint holds temperature {value.tolist()}, which '
                              f'replaces the config\'s {own.tolist()}')
            if own.shape == value.shape:
                own.copy_(value)  # in place: a DDP wrapper keeps its buffer list
            else:
                self.temperature = value.to(own.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def scale_logits(self, seg_logits: torch.Tensor) -> torch.Tensor:
        """``seg_logits / T`` on the channel dimension (refused while a required ``T`` is missing)."""
        t = self.temperature
        if bool(torch.isnan(t).any()):
            raise RuntimeError(
                f'{type(self).__name__}(temperature=None) needs T from a checkpoint written by tools/calibrate.py, '
                f'but the loaded checkpoint held no {TEMPERATURE_KEY!r} (or none was loaded)')
        return apply_temperature(seg_logits, t.to(seg_logits.dtype), dim=1)

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: List[dict]) -> torch.Tensor:
        return self.scale_logits(super().encode_decode(inputs, batch_img_metas))

    def extra_repr(self) -> str:
        return f'temperature={self.temperature.tolist()}'

