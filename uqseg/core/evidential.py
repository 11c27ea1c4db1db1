"""Evidential deep learning (EDL): Dirichlet outputs, their data terms and KL regulariser.

Source: M. Sensoy, L. Kaplan, M. Kandemir, "Evidential Deep Learning to Quantify Classification
Uncertainty", NeurIPS 2018. Conventions: ``docs/edl.md``. ``K`` classes on the channel ``dim``
(1 for ``(N, K)`` rows and ``(N, K, H, W)`` maps), logits ``f``::

    evidence  e = act(f),  act in {relu, softplus, exp(clamp(f, -c, c)), elu + 1}
    alpha = e + 1,   S = sum_k alpha_k,   p = alpha / S,   vacuity u = K / S  (in (0, 1])

An EDL layer outputs ``log alpha`` (:func:`log_alpha`), so ``softmax`` of its output is
``alpha / S`` and mmseg's argmax / softmax / resizing stay right; everything here reads it back.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ['EVIDENCE_FUNCTIONS', 'DATA_TERMS', 'DEFAULT_EXP_CLAMP', 'check_evidence', 'evidence', 'log_alpha',
           'strength', 'vacuity', 'data_term', 'kl_to_uniform', 'kl_anneal', 'edl_loss_map']

Tensor = torch.Tensor

#: Evidence functions (``elu`` is ``ELU(f) + 1``, TEDL's choice).
EVIDENCE_FUNCTIONS = ('relu', 'softplus', 'exp', 'elu')
#: Data terms of the EDL loss.
DATA_TERMS = ('mse', 'log', 'digamma')
#: ``exp`` evidence clamps the logits to ``[-c, c]`` (spec: 10).
DEFAULT_EXP_CLAMP = 10.0
_F32_MAX_LOG = math.log(torch.finfo(torch.float32).max)


def check_evidence(kind: str, exp_clamp: float = DEFAULT_EXP_CLAMP, num_classes: int = 2) -> None:
    """Raise ``ValueError`` naming the key for an unknown evidence function or an ``exp_clamp``
    with which the loss overflows float32 for ``num_classes`` classes: the KL term holds
    ``lgamma(S) ~ S log S`` with ``S`` up to ``K (exp(c) + 1)``, so ``c + log K + log(c + log K)``
    must stay below ``log(float32 max) = 88.7``."""
    if kind not in EVIDENCE_FUNCTIONS:
        raise ValueError(f'evidence must be one of {EVIDENCE_FUNCTIONS}, got {kind!r}')
    c = float(exp_clamp)
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f'exp_clamp must be a positive finite number, got {exp_clamp!r}')
    if kind == 'exp' and _log_s_log_s(c, num_classes) >= _F32_MAX_LOG:
        lo, hi = 0.0, _F32_MAX_LOG  # the largest accepted clamp, by bisection (_log_s_log_s increases in c)
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _log_s_log_s(mid, num_classes) < _F32_MAX_LOG else (lo, mid)
        limit = math.floor(lo * 10) / 10
        raise ValueError(f'exp_clamp={exp_clamp!r}: exp evidence overflows float32 in the EDL loss (S = sum of '
                         f'{num_classes} values up to exp({c:g}), and its KL term holds S log S); use exp_clamp <= '
                         f'{limit:.1f} (the spec uses {DEFAULT_EXP_CLAMP:g})')


def _log_s_log_s(c: float, k: int) -> float:
    """``log(S log S)`` for the largest ``S = k (exp(c) + 1)``."""
    log_s = c + math.log(k) + math.log1p(math.exp(-c))
    return log_s + math.log(max(log_s, 1e-12))


def evidence(f: Tensor, kind: str = 'relu', exp_clamp: float = DEFAULT_EXP_CLAMP) -> Tensor:
    """Non-negative evidence ``e = act(f)`` (see the module docstring)."""
    if kind == 'relu':
        return F.relu(f)
    if kind == 'softplus':
        return F.softplus(f)
    if kind == 'exp':
        return torch.exp(f.clamp(-exp_clamp, exp_clamp))
    if kind == 'elu':
        return F.elu(f) + 1
    raise ValueError(f'evidence must be one of {EVIDENCE_FUNCTIONS}, got {kind!r}')


def log_alpha(f: Tensor, kind: str = 'relu', exp_clamp: float = DEFAULT_EXP_CLAMP) -> Tensor:
    """``log(act(f) + 1)``, computed without forming large ``alpha`` (>= 0 everywhere)."""
    if kind == 'relu':
        return torch.log1p(F.relu(f))
    if kind == 'softplus':
        return torch.log1p(F.softplus(f))
    if kind == 'exp':
        return F.softplus(f.clamp(-exp_clamp, exp_clamp))  # log(1 + exp(x))
    if kind == 'elu':
        return torch.log1p(F.elu(f) + 1)
    raise ValueError(f'evidence must be one of {EVIDENCE_FUNCTIONS}, got {kind!r}')


def _log_mean_alpha(log_alpha: Tensor, dim: int) -> Tensor:
    """``log(S / K) = m + log(mean_k exp(log alpha_k - m))`` with ``m = max(0, max_k log alpha_k)``
    (0 where that is infinite, as in ``torch.logsumexp``): the log-sum-exp shift without
    ``log K``, so zero evidence (``log alpha = 0``) gives ``m = 0``, terms ``exp(0) = 1``, their
    mean 1 and ``log 1 = 0`` exactly on any CPU (``logsumexp - log K`` rounds ``log K`` twice)."""
    m = log_alpha.detach().amax(dim, keepdim=True).clamp(min=0)
    m = m.masked_fill(torch.isinf(m), 0)
    return m.squeeze(dim) + (log_alpha - m).exp_().mean(dim).log()  # exp_ in place: as fast as logsumexp


def strength(log_alpha: Tensor, dim: int = 1) -> Tensor:
    """Dirichlet strength ``S = sum_k alpha_k = K exp(log(S / K))`` from ``log alpha``
    (exactly ``K`` for zero evidence)."""
    return log_alpha.shape[dim] * _log_mean_alpha(log_alpha, dim).exp()


def vacuity(log_alpha: Tensor, dim: int = 1) -> Tensor:
    """EDL uncertainty ``u = K / S = exp(-log(S / K))`` from ``log alpha`` (Sensoy et al. 2018,
    eq. 1), in [0, 1]: exactly 1 for zero evidence (``log alpha = 0``) on any CPU, clamped to 1
    where ``alpha < 1``; it underflows to 0 only where ``K / S`` does."""
    return (-_log_mean_alpha(log_alpha, dim)).exp().clamp(max=1.0)


def data_term(alpha: Tensor, y: Tensor, kind: str = 'mse', dim: int = 1) -> Tensor:
    """EDL data term per sample (``dim`` summed out), ``y`` one-hot (same shape as ``alpha``)::

        mse      sum_k (y_k - p_k)^2 + p_k (1 - p_k) / (S + 1)     (Sensoy et al. eq. 5)
        log      sum_k y_k (log S - log alpha_k)                     (type II maximum likelihood, eq. 3)
        digamma  sum_k y_k (digamma(S) - digamma(alpha_k))           (Bayes risk of cross-entropy, eq. 4)
    """
    s = alpha.sum(dim, keepdim=True)
    if kind == 'mse':
        p = alpha / s
        return ((y - p) ** 2 + p * (1 - p) / (s + 1)).sum(dim)
    if kind == 'log':
        return (y * (torch.log(s) - torch.log(alpha))).sum(dim)
    if kind == 'digamma':
        return (y * (torch.digamma(s) - torch.digamma(alpha))).sum(dim)
    raise ValueError(f'data_term must be one of {DATA_TERMS}, got {kind!r}')


def kl_to_uniform(alpha: Tensor, dim: int = 1) -> Tensor:
    """``KL(Dir(alpha) || Dir(1))`` per sample::

        lgamma(S) - lgamma(K) - sum_k lgamma(alpha_k) + sum_k (alpha_k - 1)(digamma(alpha_k) - digamma(S))

    with its closed-form gradient ``(alpha_j - 1) trigamma(alpha_j) - (S - K) trigamma(S)``
    (:class:`_KLToUniform`): autograd through digamma and lgamma evaluates each special function
    several times, the slowest part of an EDL iteration on a CPU (``benchmarks/bench_output_layers.py``).
    """
    return _KLToUniform.apply(alpha, dim)


class _KLToUniform(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha: Tensor, dim: int) -> Tensor:
        k = alpha.shape[dim]
        s = alpha.sum(dim, keepdim=True)
        dig_s = torch.digamma(s)
        kl = (torch.lgamma(s.squeeze(dim)) - math.lgamma(k) - torch.lgamma(alpha).sum(dim)
              + ((alpha - 1) * (torch.digamma(alpha) - dig_s)).sum(dim))
        ctx.save_for_backward(alpha, s)
        ctx.dim, ctx.k = dim, k
        return kl

    @staticmethod
    def backward(ctx, grad: Tensor):
        alpha, s = ctx.saved_tensors
        g = (alpha - 1) * torch.polygamma(1, alpha) - (s - ctx.k) * torch.polygamma(1, s)
        return g * grad.unsqueeze(ctx.dim), None


def kl_anneal(step: float, anneal_iters: float) -> float:
    """The annealing factor ``min(1, t / T)``: 0 before ``t = 0``, then 1 at once for ``T = 0``."""
    if step < 0:
        return 0.0
    if anneal_iters <= 0:
        return 1.0
    return float(min(1.0, step / anneal_iters))


def edl_loss_map(alpha: Tensor, y: Tensor, kind: str = 'mse', kl_factor: float = 0.0, dim: int = 1) -> Tensor:
    """Data term plus ``kl_factor * KL(Dir(alpha~) || Dir(1))`` with ``alpha~ = y + (1 - y) alpha``
    (the true class's evidence removed), per sample."""
    loss = data_term(alpha, y, kind, dim)
    if kl_factor:
        loss = loss + kl_factor * kl_to_uniform(y + (1 - y) * alpha, dim)
    return loss
