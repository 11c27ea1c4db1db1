"""Temperature scaling of an mmseg model: the validation split's pixel logits, the written
checkpoint that holds ``T`` (:mod:`uqseg.engine.calibration`, shared with the classification front
end, re-exported here), and the model config that applies it (``uqseg calibrate`` and
``uqseg test``; the fit itself is :func:`uqseg.core.temperature.fit_temperature`).

The logits are the segmentor's own test-time logits (``inference``: ``whole`` or ``slide`` as the
config's ``test_cfg`` says) at the original image size, as mmseg's ``postprocess_result``
produces them (padding removed, flips undone, bilinear resize), but before its softmax /
sigmoid: a one-channel head's logits are taken from the same post-processing on a duplicated
channel, since mmseg stores sigmoid probabilities, and ``logit(p)`` would lose the saturated
pixels. Valid pixels stream into a :class:`~uqseg.core.temperature.StreamingSubsample`.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from mmseg.registry import MODELS

from ..core.temperature import StreamingSubsample
from ..engine.calibration import META_KEY, checkpoint_temperature, write_calibrated_checkpoint
from ..engine.wrapped_model import unwrap_model
from .metrics.prediction import ignored_labels
from .models.segmentors import TemperatureScaledEncoderDecoder

__all__ = ['META_KEY', 'pixel_logits', 'collect_pixel_logits', 'unit_temperature', 'checkpoint_temperature',
           'write_calibrated_checkpoint', 'temperature_scaled_model_cfg']

_IGNORED = -1


def pixel_logits(model, data_batch: dict, ignore_index=255) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(logits, labels)]`` per image of ``data_batch``: logits ``(H W, K)`` (one channel:
    ``(H W,)``) at the original size before softmax / sigmoid, labels ``(H W,)`` with every
    ``ignore_index`` label set to -1."""
    data = model.data_preprocessor(data_batch, False)
    inputs, samples = data['inputs'], data['data_samples']
    logits = model.inference(inputs, [s.metainfo for s in samples])
    one_channel = logits.shape[1] == 1
    if one_channel:  # post-processing is linear per channel; two channels keep it off the sigmoid
        logits = logits.expand(-1, 2, -1, -1).contiguous()
    samples = model.postprocess_result(logits, samples)
    rows = []
    ignore = torch.tensor(ignored_labels(ignore_index))
    for s in samples:
        z = s.seg_logits.data
        if 'gt_sem_seg' not in s:
            raise ValueError(f"{s.metainfo.get('img_path', '<image>')}: no ground truth; temperature scaling needs "
                             'annotated validation images')
        y = s.gt_sem_seg.data.reshape(-1).long().cpu()
        y = torch.where(torch.isin(y, ignore), torch.full_like(y, _IGNORED), y)
        rows.append((z[0].reshape(-1) if one_channel else z.reshape(z.shape[0], -1).T, y))
    return rows


@contextmanager
def unit_temperature(model):
    """``T = 1`` on a temperature-scaled segmentor for the duration (the fit needs raw logits)."""
    seg = unwrap_model(model)
    if not isinstance(seg, TemperatureScaledEncoderDecoder):
        yield
        return
    saved = seg.temperature
    seg.temperature = torch.ones((), device=saved.device)
    try:
        yield
    finally:
        seg.temperature = saved


def collect_pixel_logits(model, dataloader, capacity: int, seed: int = 0, ignore_index=255) -> StreamingSubsample:
    """Every valid pixel of ``dataloader`` into a seeded subsample of at most ``capacity`` rows."""
    sub = StreamingSubsample(capacity, seed, ignore_index=_IGNORED)
    model.eval()
    with torch.no_grad(), unit_temperature(model):
        for batch in dataloader:
            for z, y in pixel_logits(model, batch, ignore_index):
                sub.update(z, y)
    return sub


def temperature_scaled_model_cfg(model_cfg, source: str):
    """A copy of a segmentor config that applies a checkpoint's ``T``: mmseg's ``EncoderDecoder``
    becomes ``TemperatureScaledEncoderDecoder(temperature=None)`` (the checkpoint must bring it); a
    temperature-scaled type (it or a registered subclass, e.g. ``LDLEncoderDecoder``) stays, its
    ``temperature`` None unless the config sets one (then the checkpoint's replaces it, with a
    warning); a TTA model's ``module`` is changed. Other segmentor types are refused naming
    ``source``."""
    cfg = copy.deepcopy(model_cfg)
    inner = cfg['module'] if 'module' in cfg else cfg
    kind = inner.get('type')
    cls = kind if isinstance(kind, type) else MODELS.get(kind)
    if kind == 'EncoderDecoder':
        inner['type'] = 'TemperatureScaledEncoderDecoder'
    elif not (isinstance(cls, type) and issubclass(cls, TemperatureScaledEncoderDecoder)):
        raise ValueError(f'{source}: temperature scaling applies to mmseg EncoderDecoder models (and to '
                         f'TemperatureScaledEncoderDecoder and its subclasses); the config\'s model is {kind!r}')
    if 'temperature' not in inner:
        inner['temperature'] = None
    return cfg
