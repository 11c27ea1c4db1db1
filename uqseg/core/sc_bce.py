"""SC-BCE loss for Adaptive Stochastic Label Perturbation (ASLP).

Source: J. Liu et al., "Model Calibration in Dense Classification with Adaptive Label
Perturbation", ICCV 2023; uqseg's conventions: ``docs/aslp.md#sc-bce-loss``. Registered in mmseg's MODELS by
:mod:`uqseg.seg.models.losses`.

Dense binary classification with logits ``z`` (one channel), labels ``y`` in {0, 1} and
``s = sigmoid(z)``. ``BCE(z, t) = -t log s - (1 - t) log(1 - s) = softplus(z) - t z`` is linear
in the target ``t``.

Perturbed label (paper convention, ``beta`` in [0, 2]; targets stay in [0, 1])::

    p(y, beta) = (1 - beta/2) y + (beta/2) (1 - y)

====  ====  ==========================================================================
name  beta  target
====  ====  ==========================================================================
HI    2.0   hard inversion ``1 - y`` (default)
SI    1.5   soft inversion ``0.25`` / ``0.75``
M     1.0   uniform ``0.5``
DM    1.0   ``0.5 + e``, ``e ~ N(0, 1)`` truncated to [-0.25, 0.25], drawn **per pixel** (as
            the public code, which fills a noise tensor shaped like the selected labels).
            ``E[e] = 0``, so its expected target is that of M (effective beta 1.0).
====  ====  ==========================================================================

The public code writes ``(1 - 2b) y + b`` with ``b = beta/2`` but defaults to ``b = 2``, which
gives targets -1 and 2; that bug is not reproduced here.

Per call and per image ``i``: ``Z_i ~ Bernoulli(alpha_i)``; target ``p(y_i, beta)`` if ``Z_i``
else ``y_i`` (``mode='sample'``, as the public code). ``mode='expected'`` minimises the
closed-form expectation over ``Z_i`` (and the DM noise)::

    SC-BCE = (1 - alpha beta) BCE(z, y) + (alpha beta / 2) CAL(z),   CAL(z) = -log(s (1 - s))
           = (1 - alpha) BCE(z, y) + alpha BCE(z, p(y, beta))          (exactly)

with ``CAL(z) = softplus(z) + softplus(-z)`` (stable for any finite logit).

Special cases:

* label smoothing: ``alpha = 1`` gives the deterministic target
  ``(1 - eps) y + eps (1 - y)`` with ``eps = beta/2`` (mass ``eps`` moved to the other class;
  in the ``(1 - eps') y + eps'/K`` convention with K = 2 this is ``eps' = beta``);
* DisturbLabel-style flipping: ``beta = 2`` (HI) and ``alpha = rate`` flips the whole label map
  of an image with probability ``rate``. (Original DisturbLabel redraws the label uniformly over
  C classes with probability ``a``; for C = 2 that is a flip rate ``a / 2``.)

ASLP alpha gradient (per image, pixel means over valid pixels, detached logits)::

    g_i = mean BCE(z, p(y_i, beta)) - mean BCE(z, y_i) = (beta/2) mean((2y - 1) z)

Normalisation: the loss is a mean over all valid (non-ignored) pixels of the batch, pooled as
mmseg does (``avg_non_ignore=True`` by default, since uqseg takes the mean over valid pixels,
``docs/aslp.md#normalisation-over-valid-pixels``; mmseg's ``CrossEntropyLoss`` defaults to
False). Hence, for the pooled expected loss ``L``,
``dL/d alpha_i = (n_i / n_valid) g_i`` with ``n_i`` the valid pixels of image ``i`` and
``n_valid`` those of the batch (times ``loss_weight``); ``g_i`` is the gradient of image ``i``'s
own pixel-mean loss, which is what the alpha update rule uses (see :mod:`uqseg.core.aslp_rule`).
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import LabelRangeError, reject_unknown_kwargs

Tensor = torch.Tensor

#: beta of each named perturbation (DM: base beta of its noisy target 0.5 + e).
PERTURBATION_BETAS = {'HI': 2.0, 'SI': 1.5, 'M': 1.0, 'DM': 1.0}
#: DM noise: N(0, DM_NOISE_STD) truncated to [-DM_NOISE_BOUND, DM_NOISE_BOUND].
DM_NOISE_STD = 1.0
DM_NOISE_BOUND = 0.25
_MODES = ('sample', 'expected')


def resolve_perturbation(perturbation: Union[str, float, None] = 'HI',
                         beta: Optional[float] = None) -> tuple[float, bool]:
    """Return ``(beta, noisy)`` for a named perturbation and/or an explicit numeric beta.

    ``perturbation`` is one of HI/SI/M/DM or a number (taken as beta). An explicit ``beta``
    overrides the default ``'HI'``; with another name it must agree with that name's beta
    (DM: only 1.0). ``noisy`` is True for DM.
    """
    if isinstance(perturbation, bool):
        raise ValueError(f'perturbation must be a name or a number, got {perturbation!r}')
    if perturbation is None:
        perturbation = 'HI'
    if isinstance(perturbation, (int, float)):
        if beta is not None and float(beta) != float(perturbation):
            raise ValueError(f'perturbation={perturbation!r} and beta={beta!r} disagree')
        beta, name = float(perturbation), None
    else:
        name = str(perturbation).upper()
        if name not in PERTURBATION_BETAS:
            raise ValueError(f'unknown perturbation {perturbation!r}; expected one of '
                             f'{sorted(PERTURBATION_BETAS)} or a numeric beta in [0, 2]')
        if beta is None:
            beta = PERTURBATION_BETAS[name]
        elif name != 'HI' and float(beta) != PERTURBATION_BETAS[name]:
            raise ValueError(f'perturbation={perturbation!r} has beta '
                             f'{PERTURBATION_BETAS[name]}, but beta={beta!r} was given')
    beta = float(beta)
    if not (0.0 <= beta <= 2.0) or math.isnan(beta):
        raise ValueError(f'beta must lie in [0, 2], got {beta!r}')
    return beta, name == 'DM'


def _rand(shape: torch.Size, like: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """Uniform [0, 1) draws shaped ``shape`` on ``like``'s device, from ``generator``."""
    if generator is None:
        return torch.rand(shape, device=like.device, dtype=torch.float64)
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return u.to(like.device)


def truncated_normal(shape: torch.Size, like: Tensor, std: float = DM_NOISE_STD,
                     bound: float = DM_NOISE_BOUND,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """Samples of N(0, std^2) truncated to [-bound, bound] by inverse-CDF (seedable)."""
    u = _rand(shape, like, generator)
    lo = 0.5 * math.erfc(bound / (std * math.sqrt(2.0)))  # Phi(-bound / std)
    e = std * torch.special.ndtri(lo + (1.0 - 2.0 * lo) * u)
    return e.clamp_(-bound, bound).to(like.dtype)


def perturb_labels(y: Tensor, beta: Optional[float] = None,
                   perturbation: Union[str, float] = 'HI',
                   generator: Optional[torch.Generator] = None) -> Tensor:
    """Perturbed targets ``p(y, beta) = (1 - beta/2) y + (beta/2)(1 - y)``, in [0, 1].

    ``y``: labels (or soft labels) in [0, 1], any shape. ``perturbation``: HI (beta 2), SI (1.5),
    M (1.0), DM (0.5 + per-pixel truncated-normal noise in [-0.25, 0.25]); an explicit ``beta``
    overrides the default HI. Returns a float tensor shaped like ``y``.
    """
    beta, noisy = resolve_perturbation(perturbation, beta)
    yf = y if y.is_floating_point() else y.float()
    if yf.numel() and (not torch.isfinite(yf).all() or yf.min() < 0 or yf.max() > 1):
        bad = yf[~((yf >= 0) & (yf <= 1))]
        raise ValueError(f'labels must lie in [0, 1]; got values {bad.unique()[:8].tolist()}')
    t = (1.0 - beta / 2.0) * yf + (beta / 2.0) * (1.0 - yf)
    if noisy:
        t = t + truncated_normal(t.shape, t, generator=generator)
    return t.clamp(0.0, 1.0)  # only guards float rounding: the formula stays in [0, 1]


def _check_logits(cls_score: Tensor) -> Tensor:
    """Validate ``(N, 1, H, W)`` or ``(N, H, W)`` logits; return them as ``(N, H, W)``."""
    if cls_score.dim() == 4:
        if cls_score.shape[1] != 1:
            raise ValueError(
                'SC-BCE is a binary loss: cls_score must have 1 channel (N, 1, H, W), got '
                f'{cls_score.shape[1]} channels, shape {tuple(cls_score.shape)}')
        cls_score = cls_score[:, 0]
    elif cls_score.dim() != 3:
        raise ValueError('cls_score must have shape (N, 1, H, W) or (N, H, W), got '
                         f'{tuple(cls_score.shape)}')
    if not cls_score.is_floating_point():
        raise ValueError(f'cls_score must be floating point logits, got {cls_score.dtype}')
    finite = torch.isfinite(cls_score)
    if not finite.all():
        bad = cls_score[~finite]
        raise ValueError(f'cls_score contains {bad.numel()} non-finite logits (e.g. '
                         f'{bad[0].item()}) in a tensor of shape {tuple(cls_score.shape)}')
    return cls_score


def _check_label(label: Tensor, logits: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Validate labels against ``(N, H, W)`` logits; return (float targets, valid mask)."""
    if label.dim() == 4 and label.shape[1] == 1:
        label = label[:, 0]
    if label.shape != logits.shape:
        raise ValueError(f'label shape {tuple(label.shape)} does not match cls_score '
                         f'(N, H, W) shape {tuple(logits.shape)}')
    ignored = label == ignore_index
    bad = ~((label == 0) | (label == 1) | ignored)
    if bad.any():
        vals = label[bad].unique()[:8].tolist()
        first = int(bad.reshape(bad.shape[0], -1).any(1).nonzero()[0, 0])
        raise LabelRangeError(f'SCBCELoss: labels must be 0, 1 or ignore_index={ignore_index}; got {vals} '
                              f'(sample {first} of the batch)', sample=first, value=vals[0])
    valid = ~ignored
    y = torch.where(valid, label, torch.zeros_like(label)).to(logits.dtype)
    return y, valid


def _check_alpha(alpha: Union[float, Tensor], n: int, like: Tensor) -> Tensor:
    """Validate per-image ``alpha`` (scalar or shape (N,)); return it shaped (N,)."""
    a = torch.as_tensor(alpha, dtype=like.dtype, device=like.device)
    if a.dim() > 1 or (a.dim() == 1 and a.shape[0] != n):
        raise ValueError(f'alpha must be a scalar or have shape ({n},) (one per image), got '
                         f'shape {tuple(a.shape)}')
    bad = ~((a >= 0) & (a <= 1))
    if bad.any():
        raise ValueError(f'alpha must lie in [0, 1], got {a.detach()[bad].tolist()}')
    return a.expand(n)


def aslp_gradient(logits: Tensor, label: Tensor, beta: float = 2.0,
                  ignore_index: int = 255) -> Tensor:
    """Per-image ASLP gradient ``g_i = (beta/2) mean_valid((2y - 1) z)``, shape (N,).

    Equals ``mean BCE(z, p(y_i, beta)) - mean BCE(z, y_i)`` over the valid pixels of image i,
    i.e. d/d alpha_i of image i's pixel-mean expected SC-BCE. Logits are detached; images with
    no valid pixel get 0. For DM use beta 1.0 (its expected target is 0.5).
    """
    beta, _ = resolve_perturbation(beta)
    z = _check_logits(logits.detach())
    y, valid = _check_label(label, z, ignore_index)
    v = valid.to(z.dtype)
    s = ((2.0 * y - 1.0) * z * v).flatten(1).sum(1)
    n = v.flatten(1).sum(1)
    return (beta / 2.0) * s / n.clamp(min=1.0)


class PerImageAlpha:
    """The per-image alphas of one batch, set by an ASLP head around its ``loss_by_feat``.

    ``alpha``: shape (N,), one value per image of the batch, in batch order. After the loss's
    forward, ``g`` holds the per-image ASLP gradient (shape (N,), detached) of the logits and labels
    the loss received, and ``calls`` the number of forwards (exactly 1 is expected).
    """

    def __init__(self, alpha: Tensor) -> None:
        self.alpha = alpha
        self.g: Optional[Tensor] = None
        self.calls = 0


class SCBCELoss(nn.Module):
    """Self-calibrating BCE (ASLP) for binary ``(N, 1, H, W)`` logits; see the module docstring.

    Args:
        perturbation: 'HI' (beta 2, default), 'SI' (1.5), 'M' (1.0), 'DM' (0.5 + per-pixel noise)
            or a numeric beta in [0, 2].
        beta: explicit beta; overrides the default 'HI' (must agree with another name).
        mode: 'sample' (one Bernoulli(alpha_i) per image per call, as the public code) or
            'expected' (closed form ``(1 - alpha beta) BCE + (alpha beta / 2) CAL``).
        alpha: fixed alpha in [0, 1], used when ``forward`` gets no per-image ``alpha``.
        loss_weight: multiplier of the loss.
        loss_name: key in mmseg's loss dict (must start with ``loss_`` to be back-propagated).
        avg_non_ignore: divide by the number of valid pixels (default, the spec's "mean over
            valid pixels"); False divides by all pixels, as mmseg's default CrossEntropyLoss.
    """

    def __init__(self, perturbation: Union[str, float] = 'HI', beta: Optional[float] = None,
                 mode: str = 'sample', alpha: float = 0.0, loss_weight: float = 1.0,
                 loss_name: str = 'loss_scbce', avg_non_ignore: bool = True, **unknown) -> None:
        super().__init__()
        reject_unknown_kwargs(type(self), unknown, hint=(
            "In an mmengine config these usually come from a base config's loss_decode (e.g. "
            "CrossEntropyLoss's use_sigmoid) merged into this dict: write "
            "loss_decode=dict(_delete_=True, type='SCBCELoss', ...)."))
        self.beta, self.noisy = resolve_perturbation(perturbation, beta)
        self.perturbation = perturbation if isinstance(perturbation, str) else None
        if mode not in _MODES:
            raise ValueError(f'mode must be one of {_MODES}, got {mode!r}')
        self.mode = mode
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must lie in [0, 1], got {alpha!r}')
        self.alpha = alpha
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name
        self.avg_non_ignore = bool(avg_non_ignore)
        self._batch: Optional[PerImageAlpha] = None

    def extra_repr(self) -> str:
        return (f'beta={self.beta}, noisy={self.noisy}, mode={self.mode!r}, alpha={self.alpha}, '
                f'loss_weight={self.loss_weight}, avg_non_ignore={self.avg_non_ignore}')

    @property
    def loss_name(self) -> str:
        """Name of the loss in mmseg's loss dict."""
        return self._loss_name

    def aslp_gradient(self, cls_score: Tensor, label: Tensor, ignore_index: int = 255) -> Tensor:
        """``aslp_gradient`` with this loss's (effective) beta."""
        return aslp_gradient(cls_score, label, self.beta, ignore_index)

    @contextlib.contextmanager
    def per_image_alpha(self, alpha: Tensor) -> Iterator[PerImageAlpha]:
        """Use ``alpha`` (shape (N,)) for the forward calls inside the block that pass no ``alpha``.

        This is how an ASLP head (:class:`uqseg.seg.models.heads.ASLPHead`) hands its per-image
        alphas to the loss through an unmodified mmseg ``loss_by_feat``, which calls
        ``loss_decode(seg_logits, seg_label, weight=..., ignore_index=...)`` with the logits already
        resized to the labels. The forward also stores in the yielded :class:`PerImageAlpha` the
        per-image ``g_i`` (:func:`aslp_gradient`) of exactly those detached logits and labels, so the
        alpha update sees what the loss saw. A second forward inside the block is an error (the
        head would otherwise mix two batches' statistics).
        """
        if self._batch is not None:
            raise RuntimeError('SCBCELoss.per_image_alpha blocks cannot be nested')
        batch = PerImageAlpha(alpha)
        self._batch = batch
        try:
            yield batch
        finally:
            self._batch = None

    def forward(self, cls_score: Tensor, label: Tensor, weight: Optional[Tensor] = None,
                ignore_index: int = 255, alpha: Optional[Union[float, Tensor]] = None,
                generator: Optional[torch.Generator] = None, **kwargs) -> Tensor:
        """Loss (scalar) for logits ``(N, 1, H, W)``/``(N, H, W)`` and labels ``(N, H, W)``.

        ``weight``: optional per-pixel weight ``(N, H, W)`` (e.g. mmseg's OHEM sampler); like mmseg,
        the mean divides by the pixel count, not the weight sum. ``alpha``: optional per-image
        ``(N,)`` tensor overriding the fixed alpha (differentiable in 'expected' mode).
        ``generator``: torch.Generator for the Bernoulli / DM draws of 'sample' mode.
        Inside :meth:`per_image_alpha`, a call without ``alpha`` takes the block's alphas and
        records the per-image ``g``.
        """
        batch = self._batch if alpha is None else None
        if batch is not None:
            if batch.calls:
                raise RuntimeError('SCBCELoss was called twice inside one per_image_alpha block: the '
                                   "head's loss_by_feat must call its ASLP loss once per batch")
            batch.calls += 1
            alpha = batch.alpha
        z = _check_logits(cls_score)
        if z.dtype in (torch.float16, torch.bfloat16):
            z = z.float()
        y, valid = _check_label(label, z, ignore_index)
        n = z.shape[0]
        a = _check_alpha(self.alpha if alpha is None else alpha, n, z)
        v = valid.to(z.dtype)
        if batch is not None:  # g_i of these very logits and labels (see aslp_gradient)
            vd = v.detach()
            s = ((2.0 * y - 1.0) * z.detach() * vd).flatten(1).sum(1)
            batch.g = (self.beta / 2.0) * s / vd.flatten(1).sum(1).clamp(min=1.0)
        if weight is not None:
            if weight.dim() == 4 and weight.shape[1] == 1:
                weight = weight[:, 0]
            if weight.shape != z.shape:
                raise ValueError(f'weight shape {tuple(weight.shape)} does not match '
                                 f'(N, H, W) = {tuple(z.shape)}')
            v = v * weight.to(z.dtype)

        if self.mode == 'expected':
            ab = (a * self.beta).view(n, 1, 1)
            bce = F.binary_cross_entropy_with_logits(z, y, reduction='none')
            cal = F.softplus(z) + F.softplus(-z)
            loss = (1.0 - ab) * bce + (ab / 2.0) * cal
        else:
            flip = _rand(torch.Size([n]), z, generator) < a.detach().double()
            target = y
            if bool(flip.any()):
                p = perturb_labels(y, self.beta, 'DM' if self.noisy else 'HI', generator)
                target = torch.where(flip.view(n, 1, 1), p, y)
            loss = F.binary_cross_entropy_with_logits(z, target, reduction='none')

        denom = valid.sum() if self.avg_non_ignore else valid.numel()
        loss = (loss * v).sum() / max(float(denom), 1.0)
        return self.loss_weight * loss.to(cls_score.dtype)
