"""Which outputs temperature scaling applies to: the one rule of the scaled models and the tools.

Temperature scaling (Guo et al., 2017) turns a model's ``p = softmax(z)`` into ``softmax(z / T)``.
It applies to the output kinds whose channels are logits (:data:`TEMPERATURE_KINDS`): a plain
head's ``logits`` and DisMax / IsoMax+'s ``distance_logits`` (``L / T0``; DisMax's own post-hoc
step is a temperature, Macedo & Ludermir). It does not apply to

* ``log_alpha`` (EDL): ``softmax(log alpha) = alpha / S`` is the Dirichlet mean, but the Dirichlet
  is ``alpha`` itself (vacuity ``K / S``, evidence ``alpha - 1``); ``alpha ** (1 / T)`` is another
  Dirichlet, not the model's one calibrated;
* ``probs``: probabilities are no logits (``softmax(p / T)`` is not ``p`` at ``T = 1``).

:func:`check_temperature_kind` raises for those, naming the model or file; it is called by both
front ends' scaled models (``TemperatureScaledEncoderDecoder``, ``TemperatureScaledImageClassifier``)
and their calibration tools, and by ``uqseg eval-selective --fit-temperature``.
"""
from __future__ import annotations

__all__ = ['TEMPERATURE_KINDS', 'check_temperature_kind']

#: The output kinds whose channels temperature scaling divides.
TEMPERATURE_KINDS = ('logits', 'distance_logits')

_NOT_LOGITS = {'log_alpha': "log alpha (evidential, kind 'log_alpha')",
               'probs': "probabilities (kind 'probs')"}


def check_temperature_kind(kind: str, owner: str, source: str = 'the outputs are') -> str:
    """``kind`` if temperature scaling applies to it (:data:`TEMPERATURE_KINDS`), else
    ``ValueError('<owner>: <source> <what kind is>, not logits; ...')`` (``source`` e.g. ``'the
    head EDLHead outputs'``)."""
    if kind in TEMPERATURE_KINDS:
        return kind
    what = _NOT_LOGITS.get(kind, f'outputs of the unknown kind {kind!r}')
    raise ValueError(f'{owner}: {source} {what}, not logits; temperature scaling divides logits and applies to the '
                     f'kinds {TEMPERATURE_KINDS} only')
