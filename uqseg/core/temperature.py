"""Post-hoc temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

``fit_temperature(logits, labels)`` returns the temperature ``T > 0`` (or one per class: vector
scaling without bias) that makes ``softmax(z / T)`` (``sigmoid(z / T)`` for one-channel logits)
best calibrated on the data given, which must be a held-out validation split, never the test
split. Objectives:

* ``'nll'`` (default): the mean negative log-likelihood, minimised over ``log T`` by L-BFGS with a
  strong-Wolfe line search, in float64, without a clamp in the objective; ``T`` is then held to
  ``bounds`` (convex in ``1 / T``, so unimodal in ``log T``: for one ``T`` the sign of the
  derivative at the two bounds says whether the optimum lies inside);
* ``'ece'``: the ECE (equal-width bins, 15 by default, top-label confidence), piecewise constant
  in ``T``, so minimised by a log-spaced grid over ``bounds`` refined by golden-section search.

:func:`fit_temperature_result` says whether the optimum lay beyond a bound (:class:`TemperatureFit`:
``T`` is then the bound, not the optimum); :func:`fit_temperature` returns ``T`` and warns then.

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
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .functional import brier_score, calibration_error, nll

__all__ = ['fit_temperature', 'fit_temperature_result', 'TemperatureFit', 'check_bounds', 'DEFAULT_BOUNDS',
           'apply_temperature', 'temperature_nll', 'check_temperature', 'check_finite_logits',
           'StreamingSubsample',
           'calibration_summary', 'DEFAULT_MAX_SAMPLES', 'TEMPERATURE_KEY']

#: the state-dict key of a calibrated model's ``T`` (at the model's root), in both front ends
TEMPERATURE_KEY = 'temperature'

Tensor = torch.Tensor

#: Rows a fit uses at most (a seeded uniform subsample beyond).
DEFAULT_MAX_SAMPLES = 1_000_000
#: The range ``T`` is fitted in: three decades either side of 1, far beyond the optima seen (DisMax
#: about 0.07, plain networks 0.9 to 4); reaching one is reported, never silent.
DEFAULT_BOUNDS = (1e-3, 1e3)
#: ECE grid points per decade of ``bounds`` (at least 41 in all): 49 for the default bounds
_ECE_GRID_PER_DECADE = 8
#: how far (in log T) beyond a bound the L-BFGS trial points may go: there the objective only has to
#: say "outside", and float64 ``z / T`` stays finite
_LOG_T_MARGIN = 20.0
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


def check_bounds(bounds, owner: str = 'bounds') -> tuple[float, float]:
    """``(lo, hi)`` as floats, refused (naming ``owner`` and the value) unless ``0 < lo < hi`` are
    finite."""
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f'{owner} must be two numbers LO HI, got {bounds!r}') from None
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f'{owner} must be finite with 0 < LO < HI, got {bounds!r}')
    return lo, hi


@dataclass(frozen=True)
class TemperatureFit:
    """A fit's ``temperature`` (float64, ``()`` or ``(K,)``), the ``bounds`` it was held to, the
    ``method``, and per temperature ``at_bound``: None, or ``'lower'`` / ``'upper'`` when the
    objective still falls beyond that bound (``T`` is then the bound, not the optimum)."""

    temperature: Tensor
    bounds: tuple[float, float]
    method: str
    at_bound: tuple[Optional[str], ...]

    @property
    def bound_reached(self) -> Optional[str]:
        """None, ``'lower'``, ``'upper'``, or ``'both'`` (per class, some at each bound)."""
        hit = {b for b in self.at_bound if b}
        return None if not hit else hit.pop() if len(hit) == 1 else 'both'

    def record(self) -> dict:
        """The JSON fields: ``bounds``, ``bound_reached`` and, per class, ``at_bound``."""
        rec = dict(bounds=list(self.bounds), bound_reached=self.bound_reached)
        if self.temperature.dim():
            rec['at_bound'] = list(self.at_bound)
        return rec

    def message(self) -> Optional[str]:
        """What a reached bound means, None if none was reached."""
        if self.bound_reached is None:
            return None
        objective = 'NLL' if self.method == 'nll' else 'ECE'
        parts = []
        for side, value, why in (('lower', self.bounds[0], 'a far under-confident model, or separable rows: then no '
                                  'finite T is optimal'),
                                 ('upper', self.bounds[1], 'a far over-confident model, or logits that carry no '
                                  'information on the labels: then no finite T is optimal')):
            idx = [i for i, b in enumerate(self.at_bound) if b == side]
            if idx:
                who = f'T of class(es) {idx}' if self.temperature.dim() else 'T'
                parts.append(f'{who} stopped at the {side} bound {value:g}: the {objective} still falls beyond it '
                             f'({why})')
        return ('temperature fit: ' + '; '.join(parts) + f'. T is the bound, not the optimum: widen the bounds '
                f'(now {self.bounds[0]:g} to {self.bounds[1]:g}; bounds= of the fit, --bounds LO HI of the '
                f'calibration tools) or check the model and data')


def _nll_grad(z: Tensor, y: Tensor, log_t: Tensor, per_class: bool) -> Tensor:
    """d NLL / d log T at ``log_t`` (float64, autograd)."""
    u = log_t.detach().clone().requires_grad_(True)
    t = u.exp()
    temperature_nll(z, y, t if per_class else t[0]).backward()
    return u.grad


def _minimise_nll(z: Tensor, y: Tensor, log_t: Tensor, free: Tensor, per_class: bool, a: float, b: float) -> Tensor:
    """``log_t`` with its ``free`` entries minimising the NLL by L-BFGS (the others held), no clamp
    in ``[a, b]``; trial points beyond ``_LOG_T_MARGIN`` outside are held there (only "outside"
    matters there)."""
    if not bool(free.any()):
        return log_t
    x = log_t[free].clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=100, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        u = log_t.clone()
        u[free] = x.clamp(a - _LOG_T_MARGIN, b + _LOG_T_MARGIN)
        t = u.exp()
        loss = temperature_nll(z, y, t if per_class else t[0])
        loss.backward()
        return loss

    opt.step(closure)
    out = log_t.clone()
    out[free] = x.detach()
    return out


def _fit_nll(z: Tensor, y: Tensor, per_class: bool, lo: float, hi: float) -> tuple[Tensor, tuple]:
    """``(T, at_bound)`` (``(K,)`` or ``(1,)``) minimising the NLL over ``log T`` in ``[a, b] =
    [log lo, log hi]`` (per entry).

    One ``T``: the NLL is convex in ``1 / T``, hence unimodal in ``log T``, so its derivatives at
    the bounds decide: ``>= 0`` at ``a`` (and ``> 0`` at ``b``) puts the optimum at or below ``lo``,
    ``<= 0`` at ``b`` (and ``< 0`` at ``a``) at or above ``hi``; otherwise it is inside, and L-BFGS
    from ``T = 1`` (moved inside) finds it. Per class (convex in the ``1 / T_k``): an active set,
    L-BFGS over the free entries, entries that leave ``[a, b]`` held at the bound; a held entry
    whose derivative points back inside is freed again; at the end a held entry has reached its
    bound."""
    a, b = math.log(lo), math.log(hi)
    k = z.shape[1] if per_class else 1
    log_t = torch.full((k,), min(max(0.0, a), b), dtype=torch.float64)
    held = torch.zeros(k, dtype=torch.bool)
    if k == 1:  # both derivatives 0: a flat NLL (rows without information), no bound; T stays 1 (moved inside)
        g_a, g_b = (float(_nll_grad(z, y, torch.tensor([v], dtype=torch.float64), False)[0]) for v in (a, b))
        if g_a >= 0 and g_b > 0:
            log_t[0], held[0] = a, True
        elif g_b <= 0 and g_a < 0:
            log_t[0], held[0] = b, True
    for _ in range(2 * k + 2):
        log_t = _minimise_nll(z, y, log_t, ~held, per_class, a, b)
        out = ~held & ((log_t < a) | (log_t > b))
        log_t = log_t.clamp(a, b)
        if bool(out.any()):
            held |= out
            continue
        if k == 1 or not bool(held.any()):  # one T: the bracket above has decided
            break
        g = _nll_grad(z, y, log_t, per_class)
        inward = held & (((log_t == a) & (g < 0)) | ((log_t == b) & (g > 0)))
        if not bool(inward.any()):
            break
        held &= ~inward
    at_bound = tuple(None if not h else 'lower' if v == a else 'upper' for h, v in zip(held.tolist(), log_t.tolist()))
    t = log_t.exp()  # a held entry is its bound exactly (exp(log lo) may round off it)
    t[held & (log_t == a)], t[held & (log_t == b)] = lo, hi
    return t, at_bound


def _fit_ece(z: Tensor, y: Tensor, n_bins: int, lo: float, hi: float) -> tuple[float, Optional[str]]:
    """``(T, at_bound)`` minimising the ECE: a log grid over the bounds (``_ECE_GRID_PER_DECADE``
    points a decade, at least 41; ties to the ``T`` nearest 1), 20 golden-section steps on log T in
    the bracket of the grid's best; a bound is reached when the grid's best is its end."""
    n = max(41, math.ceil(_ECE_GRID_PER_DECADE * math.log10(hi / lo)) + 1)
    grid = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64).tolist()
    grid[0], grid[-1] = lo, hi
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
    return best_t, ('lower' if i == 0 else 'upper' if i == len(grid) - 1 else None)


def fit_temperature_result(logits: Tensor, labels: Tensor, method: str = 'nll', per_class: bool = False,
                           ignore_index: Optional[int] = None, max_samples: Optional[int] = DEFAULT_MAX_SAMPLES,
                           seed: int = 0, n_bins: int = 15, bounds: tuple = DEFAULT_BOUNDS) -> TemperatureFit:
    """The temperature (float64 scalar, or ``(K,)`` with ``per_class``) minimising ``method`` on
    the data within ``bounds``, and whether a bound was reached (:class:`TemperatureFit`); see the
    module docstring. ``per_class`` needs ``(N, K)`` logits and ``'nll'``."""
    if method not in ('nll', 'ece'):
        raise ValueError(f"method must be 'nll' or 'ece', got {method!r}")
    lo, hi = check_bounds(bounds)
    z, y = _prepare(logits, labels, ignore_index, max_samples, seed)
    if per_class and (z.dim() != 2 or method != 'nll'):
        raise ValueError("per_class temperatures need (N, K) logits and method='nll'")
    if method == 'ece':
        t, side = _fit_ece(z, y, n_bins, lo, hi)
        return TemperatureFit(torch.tensor(t, dtype=torch.float64), (lo, hi), method, (side,))
    t, at_bound = _fit_nll(z, y, per_class, lo, hi)
    return TemperatureFit(t if per_class else t[0], (lo, hi), method, at_bound)


def fit_temperature(logits: Tensor, labels: Tensor, method: str = 'nll', per_class: bool = False,
                    ignore_index: Optional[int] = None, max_samples: Optional[int] = DEFAULT_MAX_SAMPLES,
                    seed: int = 0, n_bins: int = 15, bounds: tuple = DEFAULT_BOUNDS) -> Tensor:
    """:func:`fit_temperature_result`'s temperature; a ``UserWarning`` when a bound was reached."""
    fit = fit_temperature_result(logits, labels, method, per_class, ignore_index, max_samples, seed, n_bins, bounds)
    if fit.bound_reached:
        warnings.warn(fit.message())
    return fit.temperature


def calibration_summary(logits: Tensor, labels: Tensor, temperature=1.0, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, ECE (``n_bins`` equal-width bins, top-label), NLL and Brier score of
    ``softmax(z / T)`` (``sigmoid`` for one-channel logits; Brier then positive-class) on valid rows."""
    t = check_temperature(temperature, 'calibration_summary: temperature')
    probs, conf, correct = _predictive(apply_temperature(logits.double(), t), labels)
    return {'accuracy': float(correct.double().mean()), 'ECE': calibration_error(conf, correct, n_bins),
            'NLL': nll(probs, labels), 'Brier': brier_score(probs, labels)}
