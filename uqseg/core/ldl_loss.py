"""Label distribution learning: cross-entropy to a teacher's soft labels (Hong et al., 2023).

Per valid pixel (or row) with label ``y``, student logits ``z`` and teacher logits ``t`` on the same
(augmented) input, the target is the one-hot label mixed with the teacher's distribution at
temperature ``tau``::

    q   = (1 - w_s) onehot(y) + w_s softmax(t / tau)           (K >= 2 channels)
    q_1 = (1 - w_s) y         + w_s sigmoid(t / tau)           (one channel: binary sigmoid head)
    loss = -sum_k q_k log softmax(z)_k                        (binary: BCE(sigmoid(z), q_1))
    w_s = teacher_weight * min(1, s / warmup_iters)            (s = iteration; 0 warm-up: constant)

averaged over valid pixels (``ignore_index`` excluded; the teacher never fills them in), times
``loss_weight``. With ``w_s = 0``, or a one-hot teacher, the loss is the cross-entropy (BCE) to the
label. The spec's LDL (``teacher_weight=1``) takes the teacher's distribution alone; an *online*
teacher (the student's own moving average) then never sees a label, so uqseg mixes by default
(0.5) and ramps the weight up from 0 while the teacher is still untrained. Conventions and the
choices: ``docs/ldl.md``.

Soft targets ``q`` of the scores' shape (``K >= 2``; a classifier's batch augments: mixup, FPR
mosaics; rows summing to 1) replace ``onehot(y)``: the target is ``(1 - w_s) q + w_s softmax(t / tau)``
and every row counts.

The front end hands the teacher logits in: ``forward(..., teacher_logits=t)``, or, inside mmseg's
head, :attr:`LDLLoss.teacher_logits` set for the call (``uqseg.seg.LDLEncoderDecoder``), with the
iteration in :attr:`LDLLoss.step`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .checks import class_targets, reject_unknown_kwargs
from .loss_reduction import check_channels, reduce_loss_map

__all__ = ['LDLLoss', 'ldl_targets', 'soft_cross_entropy_map', 'ramp_weight']

Tensor = torch.Tensor


def ramp_weight(weight: float, step: int, warmup_iters: int) -> float:
    """``weight * min(1, step / warmup_iters)``; ``weight`` itself for ``warmup_iters = 0``."""
    if warmup_iters <= 0:
        return float(weight)
    return float(weight) * min(1.0, max(float(step), 0.0) / warmup_iters)


def ldl_targets(teacher_logits: Tensor, labels: Tensor, weight: float, tau: float = 1.0) -> Tensor:
    """The mixed target ``q`` for ``(N, K, ...)`` teacher logits and valid ``(N, ...)`` labels
    (``K = 1``: the positive-class probability ``(N, 1, ...)``), or soft targets of the teacher
    logits' shape (float, rows summing to 1) in place of the one-hot labels."""
    t = teacher_logits.detach()
    t = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t) / tau
    if t.shape[1] == 1:
        return (1 - weight) * labels.unsqueeze(1).to(t.dtype) + weight * torch.sigmoid(t)
    if labels.is_floating_point() and labels.shape == t.shape:  # soft targets
        onehot = labels.to(t.dtype)
    else:
        onehot = F.one_hot(labels, t.shape[1]).movedim(-1, 1).to(t.dtype)
    return (1 - weight) * onehot + weight * t.softmax(1)


def soft_cross_entropy_map(logits: Tensor, target: Tensor) -> Tensor:
    """Per-pixel cross-entropy of ``softmax(logits)`` to the distribution ``target`` over dim 1
    (one channel: BCE with logits to the probability ``target``); shape ``(N, ...)``."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits, target, reduction='none')[:, 0]
    return -(target * logits.log_softmax(1)).sum(1)


class LDLLoss(nn.Module):
    """Cross-entropy to a teacher's soft labels mixed with the one-hot label; see the module docstring.

    Args:
        teacher_weight: ``w`` once warmed up: the teacher's share of the target (0: plain CE; 1: the
            teacher alone, the spec's LDL, sensible only with a trained teacher).
        teacher_temperature: ``tau``, the softmax (sigmoid) temperature of the teacher's logits.
        warmup_iters: iterations of the linear ramp of ``w`` from 0 (0: ``w`` from the start).
        loss_weight, loss_name, avg_non_ignore: as mmseg's losses.
    """

    def __init__(self, teacher_weight: float = 0.5, teacher_temperature: float = 1.0, warmup_iters: int = 0,
                 loss_weight: float = 1.0, loss_name: str = 'loss_ldl', avg_non_ignore: bool = True,
                 **unknown) -> None:
        super().__init__()
        reject_unknown_kwargs(type(self), unknown, hint=(
            "In an mmengine config these usually come from a base config's loss_decode merged into this "
            "dict: write loss_decode=dict(_delete_=True, type='LDLLoss', ...)."))
        if not 0.0 <= float(teacher_weight) <= 1.0:
            raise ValueError(f'LDLLoss: teacher_weight must be in [0, 1], got {teacher_weight!r}')
        if not float(teacher_temperature) > 0:
            raise ValueError(f'LDLLoss: teacher_temperature must be > 0, got {teacher_temperature!r}')
        if int(warmup_iters) < 0:
            raise ValueError(f'LDLLoss: warmup_iters must be >= 0, got {warmup_iters!r}')
        self.teacher_weight, self.teacher_temperature = float(teacher_weight), float(teacher_temperature)
        self.warmup_iters = int(warmup_iters)
        self.loss_weight, self._loss_name, self.avg_non_ignore = float(loss_weight), loss_name, bool(avg_non_ignore)
        #: iteration of the warm-up (set by the front end before each call)
        self.step: int = 0
        #: the teacher's logits for the current call, the shape of ``cls_score`` (set by the front end)
        self.teacher_logits: Optional[Tensor] = None

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def current_weight(self, step: Optional[int] = None) -> float:
        """``w_s`` at iteration ``step`` (default :attr:`step`)."""
        return ramp_weight(self.teacher_weight, self.step if step is None else step, self.warmup_iters)

    def extra_repr(self) -> str:
        return (f'teacher_weight={self.teacher_weight}, teacher_temperature={self.teacher_temperature}, '
                f'warmup_iters={self.warmup_iters}, loss_weight={self.loss_weight}')

    def forward(self, cls_score: Tensor, label: Tensor, weight: Optional[Tensor] = None, ignore_index: int = 255,
                teacher_logits: Optional[Tensor] = None, **kwargs) -> Tensor:
        z, _, _ = check_channels(cls_score, 'LDLLoss')
        k = z.shape[1]
        y, valid, _ = class_targets(label, z.shape, max(k, 2), ignore_index, 'LDLLoss')
        t = self.teacher_logits if teacher_logits is None else teacher_logits
        w = self.current_weight()
        if t is None:
            if w > 0:
                raise RuntimeError(
                    'LDLLoss has no teacher logits: train with an LDL segmentor and a teacher hook '
                    "(model=dict(type='LDLEncoderDecoder'), custom_hooks=[dict(type='EMATeacherHook')] or "
                    "[dict(type='CheckpointTeacherHook', checkpoint=...)]), or pass teacher_logits=")
            target = ldl_targets(z.detach(), y, 0.0)
        else:
            if t.shape != z.shape:
                raise ValueError(f'LDLLoss: teacher logits {tuple(t.shape)} do not match the student\'s '
                                 f'{tuple(z.shape)}')
            if not bool(torch.isfinite(t).all()):
                raise ValueError('LDLLoss: the teacher logits hold NaN/Inf values (a diverged teacher)')
            target = ldl_targets(t, y, w, self.teacher_temperature)
        loss = soft_cross_entropy_map(z, target.to(z.dtype))
        return self.loss_weight * reduce_loss_map(loss, valid, weight, self.avg_non_ignore, 'LDLLoss',
                                                  kwargs.get('reduction_override'))
