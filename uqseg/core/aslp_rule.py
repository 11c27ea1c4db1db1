"""ASLP per-image alpha update rule (pure function).

Source: J. Liu et al., "Model Calibration in Dense Classification with Adaptive Label
Perturbation", ICCV 2023; uqseg's conventions:
``docs/aslp.md#alpha-update-rule``. Paper
convention ``p(y, beta) = (1 - beta/2) y + (beta/2)(1 - y)``, beta in [0, 2].

After each training iteration, for the images i of the batch (g_i from
:func:`uqseg.core.sc_bce.aslp_gradient` on that iteration's detached logits and the
original labels)::

    R_i = (1 - beta alpha_i / 2) - Acc_val      (mode='calibration')
    R_i = Acc_val - Acc_ref                     (mode='conservative', Acc_ref: best Acc_val so far)
    alpha_i <- clip(alpha_i + eta (g_i + lam min(R_i, 0)), 0, alpha_max)

``Acc_val`` is the pixel accuracy (threshold 0.5) on the held-out part of the training set.

Choices for missing information:

* ``acc_val=None`` (no validation has run yet): the penalty term is 0, the step is ``eta g_i``.
  With the default warm-up (no updates in the first epochs, validation at every epoch) this does
  not arise; it only matters when updates start before the first validation.
* conservative mode with ``acc_ref=None``: the current accuracy is the best seen, so R_i = 0.

Defaults (module constants), translated from the public code. The public code keeps
``b = beta/2`` (its ``--beta`` flag, default 2.0 by a bug; the intended HI value is b = 1) and
steps ``alpha += eta_code ((CAL - 2 BCE)/b + lbd min((1 - acc) - b alpha, 0))`` with per-image
pixel means. Since ``g = (beta/2)(CAL - 2 BCE) = b (CAL - 2 BCE)``, its gradient term is
``eta_code g / b^2`` and its penalty term equals ours (``R = 1 - b alpha - acc``). At HI
(beta = 2, b = 1) both coincide, so:

* ``DEFAULT_ETA = 2e-3`` (public ``eta``; at another beta the public step corresponds to
  ``eta = 2e-3 * 4 / beta^2``);
* ``DEFAULT_LAMBDA = 2000`` (public ``lbd``): with a penalty this strong the rule acts as the
  constraint ``beta alpha / 2 <= 1 - Acc_val`` (expected target confidence never below the
  validation accuracy);
* ``alpha_max = None`` -> ``min(1/beta - ALPHA_MAX_MARGIN, 1)`` with margin 0.01 (public code:
  values reaching 1/beta are reset to 1/beta - 0.01; at alpha = 1/beta the BCE term of SC-BCE
  vanishes and the expected target is 0.5 everywhere). HI: 0.49;
* ``DEFAULT_INIT_ALPHA = 0``, ``DEFAULT_WARMUP_EPOCHS = 5`` of ``DEFAULT_TOTAL_EPOCHS = 30``
  (no updates during warm-up; for the hook that applies this rule).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

Tensor = torch.Tensor

#: beta of the default perturbation (HI, hard inversion).
DEFAULT_BETA = 2.0
#: alpha step size (public code's eta, which equals ours at beta = 2).
DEFAULT_ETA = 2e-3
#: strength of the accuracy penalty (public code's lbd).
DEFAULT_LAMBDA = 2000.0
#: alpha_max = min(1/beta - ALPHA_MAX_MARGIN, 1) when not given.
ALPHA_MAX_MARGIN = 0.01
#: initial alpha of every training image.
DEFAULT_INIT_ALPHA = 0.0
#: epochs without alpha updates at the start of training (public code: 5 of 30).
DEFAULT_WARMUP_EPOCHS = 5
DEFAULT_TOTAL_EPOCHS = 30
MODES = ('calibration', 'conservative')
#: an alpha within this of alpha_max counts as at the cap (logged share, dump tool).
AT_CAP_TOL = 1e-6


def default_alpha_max(beta: float = DEFAULT_BETA) -> float:
    """``min(1/beta - ALPHA_MAX_MARGIN, 1)`` (1 for beta = 0)."""
    if beta <= 0:
        return 1.0
    return min(1.0 / beta - ALPHA_MAX_MARGIN, 1.0)


def _check_acc(name: str, acc: float) -> float:
    acc = float(acc)
    if not 0.0 <= acc <= 1.0:
        raise ValueError(f'{name} must lie in [0, 1], got {acc!r}')
    return acc


def aslp_update(alpha: Union[Tensor, Sequence[float]], g: Union[Tensor, Sequence[float]],
                acc_val: Optional[float], beta: float = DEFAULT_BETA, eta: float = DEFAULT_ETA,
                lam: float = DEFAULT_LAMBDA, alpha_max: Optional[float] = None,
                mode: str = 'calibration', acc_ref: Optional[float] = None) -> Tensor:
    """Return the updated per-image alphas ``clip(alpha + eta (g + lam min(R, 0)), 0, alpha_max)``.

    ``alpha``, ``g``: shape (N,). ``acc_val``: validation pixel accuracy or None (penalty 0).
    ``mode``: 'calibration' (R = 1 - beta alpha / 2 - acc_val) or 'conservative'
    (R = acc_val - acc_ref; acc_ref None -> R = 0). ``alpha_max`` None -> ``default_alpha_max``.
    Inputs are not modified; the result has alpha's dtype/device (float32 for sequences).
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    beta = float(beta)
    if not 0.0 <= beta <= 2.0:
        raise ValueError(f'beta must lie in [0, 2], got {beta!r}')
    eta, lam = float(eta), float(lam)
    if not (eta >= 0 and math.isfinite(eta)):
        raise ValueError(f'eta must be finite and >= 0, got {eta!r}')
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f'lam must be finite and >= 0, got {lam!r}')
    alpha_max = default_alpha_max(beta) if alpha_max is None else float(alpha_max)
    if not 0.0 <= alpha_max <= 1.0:
        raise ValueError(f'alpha_max must lie in [0, 1], got {alpha_max!r}')

    a = torch.as_tensor(alpha)
    if not a.is_floating_point():
        a = a.float()
    a = a.detach()
    g = torch.as_tensor(g, device=a.device).detach().to(a.dtype)
    if a.dim() != 1 or g.shape != a.shape:
        raise ValueError(f'alpha and g must both have shape (N,), got {tuple(a.shape)} and '
                         f'{tuple(g.shape)}')
    bad = ~((a >= 0) & (a <= 1))
    if bad.any():
        raise ValueError(f'alpha must lie in [0, 1], got {a[bad].tolist()}')
    if not torch.isfinite(g).all():
        raise ValueError(f'g must be finite, got {g[~torch.isfinite(g)].tolist()}')

    if acc_val is None:
        penalty = torch.zeros_like(a)
    else:
        acc_val = _check_acc('acc_val', acc_val)
        if mode == 'calibration':
            r = (1.0 - beta * a / 2.0) - acc_val
        else:
            ref = acc_val if acc_ref is None else _check_acc('acc_ref', acc_ref)
            r = torch.full_like(a, acc_val - ref)
        penalty = lam * r.clamp(max=0.0)
    return (a + eta * (g + penalty)).clamp(0.0, alpha_max)
