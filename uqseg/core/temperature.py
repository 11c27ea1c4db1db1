"""Post-hoc temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

``fit_temperature(logits, labels)`` returns the temperature ``T > 0`` (or one per class: vector
scaling without bias) that makes ``softmax(z / T)`` (``sigmoid(z / T)`` for one-channel logits)
best calibrated on the data given, which must be a held-out validation split, never the test
split. Objectives:

* ``'nll'`` (default): the mean negative log-likelihood, minimised over ``log T`` by L-BFGS with a
  strong-Wolfe line search, in float64 (convex in ``1 / T`` for one temperature);
* ``'ece'``: the ECE (equal-width bins, 15 by default, top-label confidence), piecewise constant
  in ``T``, so minimised by a log-spaced grid over ``bounds`` refined by golden-section search.

Rows are ``(N, K)`` logits with ``(N,)`` labels, or ``(N,)`` one-channel logits with 0/1 labels;
``ignore_index`` rows are dropped. Dense data (millions of pixels) are fitted from a seeded
uniform subsample of ``max_samples`` valid rows: NLL and ECE are means over rows, so a uniform
subsample of 10^6 rows estimates them to about 1e-3, far below what moves T. Neither objective has
finite sufficient statistics in ``T`` (NLL needs ``logsumexp(z / T)`` of every row), so a dataset
streamed image by image is subsampled on the way by :class:`StreamingSubsample` (every valid row
gets a seeded uniform key; the ``capacity`` smallest keys are kept: a uniform sample without
replacement, in memory ``O(capacity)``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .functional import brier_score, calibration_error, nll

__all__ = ['fit_temperature', 'apply_temperature', 'temperature_nll', 'check_temperature', 'check_finite_logits',
           'StreamingSubsample',
           'calibration_summary', 'DEFAULT_MAX_SAMPLES', 'TEMPERATURE_KEY']

#: the state-dict key of a calibrated model's ``T`` (at the model's root), in both front ends
TEMPERATURE_KEY = 'temperature'

Tensor = torch.Tensor

#: Rows a fit uses at most (a seeded uniform subsample beyond).
DEFAULT_MAX_SAMPLES = 1_000_000
_GOLDEN = (math.sqrt(5) - 1) / 2


def check_temperature(temperature, owner: str = 'temperature') -> Tensor:
    """``temperature`` as a float64 tensor (a number or one per class), refused unless every value
    is finite and > 0 (the error names ``owner`` and the value)."""
    t = torch.as_tensor(temperature, dtype=torch.float64)
    if t.dim() > 1 or t.numel() == 0 or not bool((torch.isfinite(t) & (t > 0)).all()):
        raise ValueError(f'{owner} must be a finite number > 0 (or a list of them, one per class), '
                         f'got {temperature!r}')
    return t


def check_finite_logits(z: Tensor, owner: str, where: str = '') -> None:
    """Raise naming ``owner`` (and ``where``) if ``(N, K)`` or ``(N,)`` logits hold NaN / Inf. A row
    sum is NaN / Inf if the row holds one, and that one reduction is ~20x cheaper than ``isfinite``
    on every value: the values are counted only when a row sum is not finite."""
    if bool(torch.isfinite(z.sum(1) if z.dim() == 2 else z).all()):
        return
    bad = ~torch.isfinite(z)
    if bool(bad.any()):
        raise ValueError(f'{owner}: the logits hold {int(bad.sum())} NaN/Inf value(s){where}; the model that '
                         'produced them diverged, or the data is broken')


class StreamingSubsample:
    """A seeded uniform subsample, without replacement, of at most ``capacity`` valid rows of a
    stream of ``(logits, labels)`` batches: each row gets a uniform key from a generator seeded
    with ``seed``, and the rows with the ``capacity`` smallest keys are kept. ``rows()`` returns
    ``(logits, labels)`` (float32, all rows while fewer than ``capacity`` were seen) and
    :attr:`seen` the number of valid rows streamed. Logits ``(N, K)`` or one-channel ``(N,)``."""

    def __init__(self, capacity: int = DEFAULT_MAX_SAMPLES, seed: int = 0, ignore_index: Optional[int] = None):
        if int(capacity) < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity!r}')
        self.capacity, self.ignore_index = int(capacity), ignore_index
        self._gen = torch.Generator().manual_seed(seed)
        self._z: Optional[Tensor] = None
        self._y: Optional[Tensor] = None
        self._keys = torch.empty(0)
        self.seen = 0

    def update(self, logits: Tensor, labels: Tensor) -> None:
        if logits.dim() not in (1, 2) or labels.shape != logits.shape[:1]:
            raise ValueError(f'StreamingSubsample: logits must be (N, K) or (N,) with (N,) labels, got '
                             f'{tuple(logits.shape)} and {tuple(labels.shape)}')
        z, y = logits.detach().float().cpu(), labels.detach().long().cpu()
        if self.ignore_index is not None:
            keep = y != self.ignore_index
            z, y = z[keep], y[keep]
        if self._z is not None and z.shape[1:] != self._z.shape[1:]:
            raise ValueError(f'StreamingSubsample: rows of shape {tuple(z.shape[1:])} after '
                             f'{tuple(self._z.shape[1:])}; every batch must have the same channels')
        # checked before subsampling, which could otherwise drop them unseen
        check_finite_logits(z, 'StreamingSubsample', f' after {self.seen} valid rows')
        self.seen += z.shape[0]
        keys = torch.rand(z.shape[0], generator=self._gen)
        if self._z is None:
            self._z, self._y = z[:0], y[:0]
        if self._keys.numel() >= self.capacity:  # full: only rows below the largest kept key can enter
            low = keys < self._keys.max()
            z, y, keys = z[low], y[low], keys[low]
        zs, ys, ks = torch.cat([self._z, z]), torch.cat([self._y, y]), torch.cat([self._keys, keys])
        if ks.numel() > self.capacity:
            idx = torch.topk(ks, self.capacity, largest=False).indices
            zs, ys, ks = zs[idx], ys[idx], ks[idx]
        self._z, self._y, self._keys = zs, ys, ks

    def rows(self) -> tuple[Tensor, Tensor]:
        if self._z is None:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        return self._z, self._y


def apply_temperature(logits: Tensor, temperature, dim: int = 1) -> Tensor:
    """``logits / T`` with ``T`` a scalar or one value per class on ``dim``."""
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    if t.dim() == 1 and logits.dim() > 1:
        t = t.view([-1 if i == (dim % logits.dim()) else 1 for i in range(logits.dim())])
    return logits / t


def _prepare(logits: Tensor, labels: Tensor, ignore_index: Optional[int], max_samples: Optional[int],
             seed: int) -> tuple[Tensor, Tensor]:
    if logits.dim() not in (1, 2):
        raise ValueError(f'logits must be (N, K) rows or (N,) one-channel logits, got shape {tuple(logits.shape)}')
    if labels.shape != logits.shape[:1]:
        raise ValueError(f'labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}')
    z, y = logits.detach().double(), labels.detach().long()
    if ignore_index is not None:
        keep = y != ignore_index
        z, y = z[keep], y[keep]
    if z.shape[0] == 0:
        raise ValueError('fit_temperature: no valid sample to fit the temperature on (empty, or every label '
                         f'is ignore_index={ignore_index}); fit on a non-empty validation split')
    check_finite_logits(z, 'fit_temperature')
    k = 2 if z.dim() == 1 else z.shape[1]
    if int(y.min()) < 0 or int(y.max()) >= k:
        raise ValueError(f'fit_temperature: labels must be 0..{k - 1} (or ignore_index), got values in '
                         f'[{int(y.min())}, {int(y.max())}]')
    if max_samples is not None and z.shape[0] > max_samples:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(z.shape[0], generator=g)[:max_samples].to(z.device)
        z, y = z[idx], y[idx]
    return z, y


def temperature_nll(logits: Tensor, labels: Tensor, temperature) -> Tensor:
    """Mean NLL of ``softmax(z / T)`` (``sigmoid`` for one-channel logits) against the labels."""
    z = apply_temperature(logits, temperature)
    if z.dim() == 1:
        return F.binary_cross_entropy_with_logits(z, labels.to(z.dtype))
    return F.cross_entropy(z, labels)


def _predictive(zt: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(probabilities, top-label confidence, correct) of scaled logits: softmax rows, or sigmoid
    one-channel logits (the positive-class probability; confidence ``max(p, 1 - p)``)."""
    if zt.dim() == 1:
        p = torch.sigmoid(zt)
        return p, torch.maximum(p, 1 - p), (p > 0.5).long() == y
    probs = zt.softmax(1)
    conf, pred = probs.max(1)
    return probs, conf, pred == y


def _ece(z: Tensor, y: Tensor, t: float, n_bins: int) -> float:
    _, conf, correct = _predictive(z / t, y)
    return calibration_error(conf, correct, n_bins)


def fit_temperature(logits: Tensor, labels: Tensor, method: str = 'nll', per_class: bool = False,
                    ignore_index: Optional[int] = None, max_samples: Optional[int] = DEFAULT_MAX_SAMPLES,
                    seed: int = 0, n_bins: int = 15, bounds: tuple = (0.05, 20.0)) -> Tensor:
    """The temperature (float64 scalar, or ``(K,)`` with ``per_class``) minimising ``method`` on
    the data; see the module docstring. ``per_class`` needs ``(N, K)`` logits and ``'nll'``."""
    if method not in ('nll', 'ece'):
        raise ValueError(f"method must be 'nll' or 'ece', got {method!r}")
    lo, hi = (float(b) for b in bounds)
    if not 0 < lo < hi:
        raise ValueError(f'bounds must be 0 < lo < hi, got {bounds!r}')
    z, y = _prepare(logits, labels, ignore_index, max_samples, seed)
    if per_class and (z.dim() != 2 or method != 'nll'):
        raise ValueError("per_class temperatures need (N, K) logits and method='nll'")
    if method == 'ece':
        grid = torch.logspace(math.log10(lo), math.log10(hi), 41, dtype=torch.float64).tolist()
        errs = [_ece(z, y, t, n_bins) for t in grid]
        i = min(range(len(grid)), key=lambda j: (errs[j], abs(math.log(grid[j]))))
        a, b = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])
        best_t, best_e = grid[i], errs[i]
        for _ in range(20):  # golden-section search on log T inside the bracket of the grid's best
            c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
            ec, ed = _ece(z, y, math.exp(c), n_bins), _ece(z, y, math.exp(d), n_bins)
            for t, e in ((math.exp(c), ec), (math.exp(d), ed)):
                if e < best_e:
                    best_t, best_e = t, e
            a, b = (a, d) if ec <= ed else (c, b)
        return torch.tensor(best_t, dtype=torch.float64)
    k = z.shape[1] if (per_class and z.dim() == 2) else 1
    log_t = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        t = log_t.clamp(math.log(lo), math.log(hi)).exp()
        loss = temperature_nll(z, y, t if per_class else t[0])
        loss.backward()
        return loss

    opt.step(closure)
    t = log_t.detach().clamp(math.log(lo), math.log(hi)).exp()
    return t if per_class else t[0]


def calibration_summary(logits: Tensor, labels: Tensor, temperature=1.0, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, ECE (``n_bins`` equal-width bins, top-label), NLL and Brier score of
    ``softmax(z / T)`` (``sigmoid`` for one-channel logits; Brier then positive-class) on valid rows."""
    t = check_temperature(temperature, 'calibration_summary: temperature')
    probs, conf, correct = _predictive(apply_temperature(logits.double(), t), labels)
    return {'accuracy': float(correct.double().mean()), 'ECE': calibration_error(conf, correct, n_bins),
            'NLL': nll(probs, labels), 'Brier': brier_score(probs, labels)}
