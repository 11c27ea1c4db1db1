"""The temperature ``T`` of a temperature-scaled model (Guo et al., 2017), as a module buffer.

``TemperatureBuffer`` is mixed into a front end's model class (mmseg's
``TemperatureScaledEncoderDecoder``, mmpretrain's ``TemperatureScaledImageClassifier``), before the
codebase's class in the bases. It keeps ``T`` (one value, or one per class) in the buffer
``temperature``, which is *not* persistent: training never saves it, so a training checkpoint of a
temperature-scaled model holds none and the config's ``T`` stands; only a calibration tool writes
it, as the state-dict key ``temperature`` (:data:`~uqseg.core.temperature.TEMPERATURE_KEY`), and
loading such a checkpoint sets ``T`` from it (with a warning if the config gave another).
``temperature=None`` requires ``T`` from a checkpoint: :meth:`scale_logits` refuses to run until
one was loaded. Choices: ``docs/temperature_scaling.md``.
"""
from __future__ import annotations

import warnings
from typing import Sequence, Union

import torch

from .temperature import TEMPERATURE_KEY, apply_temperature, check_temperature

__all__ = ['TemperatureBuffer']


class TemperatureBuffer:
    """Mixin for an ``nn.Module`` whose logits are divided by ``T`` (see the module docstring)."""

    #: what writes ``T`` into a checkpoint, for the error of a missing required ``T``
    calibration_tool = 'a calibration tool'

    def init_temperature(self, temperature: Union[float, Sequence[float], None], num_classes: int) -> None:
        """Register the buffer: ``T > 0`` (a number, or one per class of ``num_classes``) or None
        (required from a checkpoint). Call once, after ``nn.Module.__init__``."""
        name = type(self).__name__
        if temperature is None:
            t = torch.tensor(float('nan'))
        else:
            t = check_temperature(temperature, f'{name}: temperature').float()
        self.temperature_required = temperature is None
        self.temperature_classes = int(num_classes)
        self.register_buffer(TEMPERATURE_KEY, t, persistent=False)
        self._check_temperature_shape(t, f'{name}: temperature')

    def _check_temperature_shape(self, t: torch.Tensor, owner: str) -> None:
        k = self.temperature_classes
        if t.dim() == 1 and t.numel() != k:
            raise ValueError(f'{owner}: {t.numel()} per-class temperatures for a head of {k} output channels')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + TEMPERATURE_KEY
        if key in state_dict:  # written by a calibration tool (the buffer itself is not persistent)
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

    def scale_logits(self, logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """``logits / T`` on ``dim`` (refused while a required ``T`` is missing)."""
        t = self.temperature
        if bool(torch.isnan(t).any()):
            raise RuntimeError(
                f'{type(self).__name__}(temperature=None) needs T from a checkpoint written by '
                f'{self.calibration_tool}, but the loaded checkpoint held no {TEMPERATURE_KEY!r} (or none was loaded)')
        return apply_temperature(logits, t.to(logits.dtype), dim=dim)

    def extra_repr(self) -> str:
        return f'temperature={self.temperature.tolist()}'
