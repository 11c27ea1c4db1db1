"""Input checks shared by the core's metrics and accumulators (``docs/metrics.md#inputs``).

Each raises ``ValueError`` (``TypeError`` for non-tensors) naming the argument and the first bad
value, so a caller one layer up only has to add the file or image it was reading.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Optional, Sequence

import torch

__all__ = ['value_range', 'LabelRangeError', 'reject_unknown_kwargs', 'check_unit', 'check_binary', 'check_n_bins',
           'check_tpr', 'flat_pair', 'fpr_key', 'class_labels', 'SOFT_TARGET_TOL', 'is_soft_target', 'soft_targets',
           'class_targets']


def _half_aminmax() -> bool:
    try:
        torch.aminmax(torch.zeros(1, dtype=torch.float16))
        return True
    except RuntimeError:  # torch < 2.2: no float16 / bfloat16 CPU kernel
        return False


_HALF_AMINMAX = _half_aminmax()


def value_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.aminmax(x)`` (NaN propagates into both); float16 / bfloat16 on a CPU without the
    kernel (torch < 2.2) are read as float32, which holds their values exactly."""
    if x.dtype in (torch.float16, torch.bfloat16) and x.device.type == 'cpu' and not _HALF_AMINMAX:
        return torch.aminmax(x.float())
    return torch.aminmax(x)


def check_unit(x: torch.Tensor, name: str) -> None:
    """Raise unless every value of the float tensor ``x`` is finite and in [0, 1]."""
    if x.numel() == 0 or x.dtype == torch.bool:
        return
    lo, hi = value_range(x)
    if bool((lo >= 0) & (hi <= 1)):  # one pass for valid input (NaN fails both comparisons)
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        v = x[bad][0].item()
        raise ValueError(f'{name} must be finite, got {v} (at {int(bad.sum())} position(s))')
    bad = (x < 0) | (x > 1)
    if bool(bad.any()):
        v = x[bad][0].item()
        raise ValueError(f'{name} must lie in [0, 1], got {v} (at {int(bad.sum())} position(s))')


def check_binary(x: torch.Tensor, name: str) -> None:
    """Raise unless ``x`` is bool or holds only 0 and 1."""
    if x.numel() == 0 or x.dtype == torch.bool:
        return
    bad = (x != 0) & (x != 1)
    if bool(bad.any()):
        v = x[bad][0].item()
        raise ValueError(f'{name} must be bool or 0/1 for this metric, got {v}')


def check_n_bins(n_bins: int) -> int:
    """Return ``n_bins`` if it is a positive int (not a bool), else raise."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f'n_bins must be a positive int, got {n_bins!r}')
    return n_bins


def check_tpr(tpr: float) -> float:
    """Return ``tpr`` if it lies in (0, 1], else raise."""
    if not 0 < tpr <= 1:
        raise ValueError(f'tpr must lie in (0, 1], got {tpr}')
    return tpr


def fpr_key(tpr: float) -> str:
    """The result key of the FPR at a true-positive rate: ``'FPR@95TPR'`` for 0.95."""
    return f'FPR@{round(tpr * 100):d}TPR'


def flat_pair(conf: torch.Tensor, correct: torch.Tensor, binary: bool, unit: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten and check ``(conf, correct)``; return ``(conf, correct as float64)``.

    ``conf`` must be floating point in [0, 1] (``unit=False``: any value but NaN, a ranking key
    of :mod:`uqseg.core.confidence_keys`, +-inf included); ``correct`` bool, integer or float in
    [0, 1], and 0/1 when ``binary`` (ranking metrics).
    """
    if not isinstance(conf, torch.Tensor) or not isinstance(correct, torch.Tensor):
        raise TypeError('conf and correct must be torch.Tensors')
    if conf.shape != correct.shape:
        raise ValueError(f'conf and correct must have the same shape, got {tuple(conf.shape)} '
                         f'and {tuple(correct.shape)}')
    if conf.is_complex() or conf.dtype == torch.bool or not conf.is_floating_point():
        raise ValueError(f'conf must be a floating-point tensor, got dtype {conf.dtype}')
    conf, correct = conf.reshape(-1).contiguous(), correct.reshape(-1)
    if unit:
        check_unit(conf, 'conf')
    elif bool(torch.isnan(conf).any()):
        raise ValueError(f'conf (a ranking key) must not be NaN (at {int(torch.isnan(conf).sum())} position(s))')
    if correct.is_floating_point():
        check_unit(correct, 'correct')
    if binary:
        check_binary(correct, 'correct')
    elif correct.dtype != torch.bool and not correct.is_floating_point():
        bad = (correct < 0) | (correct > 1)
        if bool(bad.any()):
            raise ValueError(f'correct must lie in [0, 1], got {correct[bad][0].item()}')
    return conf, correct.to(torch.float64)


def reject_unknown_kwargs(owner: type, kwargs: dict, allowed: Sequence[str] = (), hint: str = '') -> None:
    """Raise ``TypeError`` naming ``owner``, the unknown keys (with close matches) and the valid
    ones, unless every key of ``kwargs`` is in ``allowed``. For components whose ``**kwargs``
    would otherwise end in a parent's "unexpected keyword argument" that names neither."""
    unknown = sorted(set(kwargs) - set(allowed))
    if not unknown:
        return
    params = [n for n, p in inspect.signature(owner.__init__).parameters.items()
              if n != 'self' and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    valid = sorted(set(params) | set(allowed))
    guesses = {k: difflib.get_close_matches(k, valid, n=1) for k in unknown}
    said = ', '.join(f'{k!r}' + (f" (did you mean {g[0]!r}?)" if g else '') for k, g in guesses.items())
    raise TypeError(f'{owner.__name__} got unknown argument(s) {said}; its arguments are {valid}.'
                    + (f' {hint}' if hint else ''))


class LabelRangeError(ValueError):
    """A training label outside the classes a loss takes; ``sample`` is its index in the batch
    (a head turns it into the image and mask file) and ``value`` the label."""

    def __init__(self, message: str, sample: int, value) -> None:
        super().__init__(message)
        self.sample, self.value = sample, value


def class_labels(label: torch.Tensor, shape: torch.Size, num_classes: int, ignore_index: Optional[int],
                 owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check integer class labels against scores of ``shape`` ``(N, K, ...)``; return (labels with
    ignored pixels set to 0, valid mask). ``label`` may carry a singleton channel ``(N, 1, ...)``.
    A label outside ``0..K-1`` that is not ``ignore_index`` raises :class:`LabelRangeError`
    naming ``owner`` and the sample. ``ignore_index=None``: no label is ignored (classification,
    where e.g. 255 is an ImageNet class)."""
    if label.dim() == len(shape) and label.shape[1] == 1:
        label = label[:, 0]
    want = (shape[0],) + tuple(shape[2:])
    if tuple(label.shape) != want:
        raise ValueError(f'{owner}: label shape {tuple(label.shape)} does not match the scores '
                         f'{tuple(shape)} (expected {want})')
    if label.is_floating_point() or label.dtype == torch.bool:
        raise ValueError(f'{owner}: labels must be integer class indices, got dtype {label.dtype}')
    valid = torch.ones_like(label, dtype=torch.bool) if ignore_index is None else label != ignore_index
    bad = valid & ((label < 0) | (label >= num_classes))
    if bool(bad.any()):
        vals = label[bad].unique()[:8].tolist()
        first = int(bad.reshape(bad.shape[0], -1).any(1).nonzero()[0, 0])
        allowed = (f'class indices 0..{num_classes - 1} (classification has no ignore_index: every index is a class)'
                   if ignore_index is None else f'0..{num_classes - 1} or ignore_index={ignore_index}')
        raise LabelRangeError(f'{owner}: labels must be {allowed}; got {vals} (sample {first} of the batch)',
                              sample=first, value=vals[0])
    return torch.where(valid, label, torch.zeros_like(label)).long(), valid


#: How far a soft target's row may sum from 1.
SOFT_TARGET_TOL = 1e-4


def is_soft_target(target: torch.Tensor, shape: torch.Size) -> bool:
    """Whether ``target`` is meant as soft targets for scores of ``shape`` ``(N, K, ...)``: a float
    tensor with as many dimensions as the scores, ``K >= 2`` and more than one target channel (anything
    else, e.g. an ``(N, 1, H, W)`` label map, is read as labels)."""
    return target.is_floating_point() and target.dim() == len(shape) and len(shape) >= 2 and shape[1] >= 2 \
        and target.shape[1] != 1


def soft_targets(target: torch.Tensor, shape: torch.Size, owner: str) -> torch.Tensor:
    """Check soft targets ``q`` of the scores' ``shape`` ``(N, K, ...)`` (batch augments' ``gt_score``,
    a mixup of one-hot rows): float, finite, ``>= 0`` and summing to 1 over the classes (dim 1)
    within :data:`SOFT_TARGET_TOL`; return ``q``. Each failure raises ``ValueError`` naming
    ``owner``, the bad value and its sample."""
    if tuple(target.shape) != tuple(shape):
        raise ValueError(f'{owner}: soft targets of shape {tuple(target.shape)} do not match the scores '
                         f'{tuple(shape)} (soft targets have the scores\' shape; labels are (N, ...) class indices)')
    if not target.is_floating_point():
        raise ValueError(f'{owner}: soft targets must be floating point, got dtype {target.dtype}')
    if target.numel() == 0:
        return target

    def first_sample(bad: torch.Tensor) -> int:
        return int(bad.reshape(bad.shape[0], -1).any(1).nonzero()[0, 0])

    bad = ~torch.isfinite(target)
    if bool(bad.any()):
        raise ValueError(f'{owner}: soft targets must be finite, got {target[bad][0].item()} at {int(bad.sum())} '
                         f'position(s) (sample {first_sample(bad)} of the batch)')
    bad = target < 0
    if bool(bad.any()):
        raise ValueError(f'{owner}: soft targets must be >= 0, got {target[bad][0].item():.6g} '
                         f'(sample {first_sample(bad)} of the batch)')
    total = target.double().sum(1)
    bad = (total - 1).abs() > SOFT_TARGET_TOL
    if bool(bad.any()):
        raise ValueError(f'{owner}: soft targets must sum to 1 over the classes (dim 1, tolerance '
                         f'{SOFT_TARGET_TOL:g}), got a sum of {total[bad][0].item():.6g} '
                         f'(sample {first_sample(bad)} of the batch)')
    return target


def class_targets(target: torch.Tensor, shape: torch.Size, num_classes: int, ignore_index: Optional[int], owner: str
                  ) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The targets of a loss on scores of ``shape`` ``(N, K, ...)``: integer labels (``(N, ...)``,
    :func:`class_labels`, ``ignore_index`` left out) or soft targets ``q`` of the scores' shape
    (:func:`soft_targets`; every entry valid, no ``ignore_index``). Returns ``(labels or q, valid
    mask (N, ...), soft)``."""
    if is_soft_target(target, shape):
        q = soft_targets(target, shape, owner)
        return q, torch.ones((shape[0],) + tuple(shape[2:]), dtype=torch.bool, device=q.device), True
    y, valid = class_labels(target, shape, num_classes, ignore_index, owner)
    return y, valid, False
