"""Extend any registered mmseg decode head, spelled ``dict(type=<extension>, head=dict(type=<head>, ...))``.

An extension (e.g. :class:`~uqseg.seg.models.heads.ASLPHead`) is a registered subclass of
:class:`DecodeHeadWrapper`. Building it with ``head=dict(type='FCNHead', ...)`` returns an
instance of ``<Extension><Head>``, a class with both the extension and the wrapped head class as
bases, made once per pair and kept in the extension's own cache (never in module globals). So the
built head *is* an ``FCNHead``: same parameters and ``state_dict`` keys (``decode_head.conv_seg.*``
in an ``EncoderDecoder``), ``forward``, ``predict`` and ``isinstance`` checks, with the
extension's methods first in the MRO. Conventions: ``docs/architecture.md#head-extensions``.

Arguments given beside ``head`` are the extension's own (declared in its ``__init__``) or
override the head's entries. The latter makes the extension easy to put on an ``mmseg::`` base
config, whose ``decode_head`` keys (``in_channels``, ``channels``, ...) mmengine merges next
to ``head``::

    model = dict(decode_head=dict(type='ASLPHead', head=dict(type='FCNHead'), ...))
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

from ....core.checks import LabelRangeError

__all__ = ['DecodeHeadWrapper']


def _rebuild(extension: type, base: type) -> 'DecodeHeadWrapper':
    """An empty instance of ``<extension><base>`` (unpickling; the state is set afterwards)."""
    return object.__new__(extension.wrapped_class(base))


class DecodeHeadWrapper(BaseDecodeHead):
    """Base of the head extensions (see the module docstring).

    Class attributes of an extension: ``head_defaults``, entries the wrapped head gets unless
    its config sets them.
    """

    head_defaults: ClassVar[dict] = {}
    _extension: ClassVar[Optional[type]] = None  # set on the made classes
    _wrapped: ClassVar[Optional[type]] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls._wrapped is None:  # an extension, not a made class: its own cache
            cls._made: dict[type, type] = {}

    @classmethod
    def wrapped_class(cls, base: type) -> type:
        """The class ``<cls><base>`` (made once, then cached on ``cls``)."""
        if not (isinstance(base, type) and issubclass(base, BaseDecodeHead)):
            raise TypeError(f"{cls.__name__} needs a subclass of mmseg's BaseDecodeHead in head=dict(type=...), "
                            f'got {base!r}')
        if issubclass(base, DecodeHeadWrapper):
            raise TypeError(f'{cls.__name__}: head={base.__name__} is already an extended head; '
                            'extensions do not nest')
        made = cls._made.get(base)
        if made is None:
            made = type(f'{cls.__name__[:-len("Head")] if cls.__name__.endswith("Head") else cls.__name__}'
                        f'{base.__name__}', (cls, base),
                        {'__module__': cls.__module__, '_extension': cls, '_wrapped': base,
                         '__doc__': f'{base.__name__} extended by :class:`{cls.__name__}`.'})
            cls._made[base] = made
        return made

    @classmethod
    def resolve_head(cls, head: Optional[dict]) -> type:
        """The decode head class named by ``head['type']`` (a registered name or a class)."""
        if not isinstance(head, dict) or head.get('type') is None:
            raise ValueError(f"{cls.__name__} needs the decode head to extend: head=dict(type='FCNHead', ...), "
                             f'got head={head!r}')
        kind = head['type']
        base = MODELS.get(kind) if isinstance(kind, str) else kind
        if base is None:
            raise KeyError(f'{cls.__name__}: head type {kind!r} is not a registered decode head')
        return base

    def __new__(cls, head: Optional[dict] = None, *args, **kwargs):
        if cls._wrapped is not None:  # a made class (or a subclass of one), built directly
            return super().__new__(cls)
        return super().__new__(cls.wrapped_class(cls.resolve_head(head)))

    def __init__(self, head: dict, **overrides: Any) -> None:
        if 'head_type' in overrides:
            raise TypeError(f"{type(self).__name__}: head_type= is no longer accepted; write "
                            f"head=dict(type={overrides['head_type']!r}, ...)")
        if self.resolve_head(head) is not self._wrapped:
            raise TypeError(f"{type(self).__name__} wraps {self._wrapped.__name__}, not head={head.get('type')!r}")
        cfg = {k: v for k, v in head.items() if k != 'type'}
        cfg.update(overrides)
        for key, value in self.head_defaults.items():
            cfg.setdefault(key, value)
        super().__init__(**cfg)

    def loss_by_feat(self, seg_logits, batch_data_samples) -> dict:
        """The wrapped head's ``loss_by_feat``; a uqseg loss's :class:`LabelRangeError` is raised
        again naming the image and mask file of the offending sample."""
        try:
            return super().loss_by_feat(seg_logits, batch_data_samples)
        except LabelRangeError as exc:
            meta = batch_data_samples[exc.sample].metainfo if exc.sample < len(batch_data_samples) else {}
            where = (f"image {meta.get('img_path', '?')}, mask {meta.get('seg_map_path', '?')}")
            raise LabelRangeError(f'{where}: label {exc.value} is outside the classes of '
                                  f'{type(self).__name__} ({exc})', exc.sample, exc.value) from exc

    def __reduce_ex__(self, protocol):
        if type(self) is not self._extension._made.get(self._wrapped):  # a class of its own: by reference
            return super().__reduce_ex__(protocol)
        return _rebuild, (self._extension, self._wrapped), self.__getstate__()
