"""Confidence and uncertainty scores of a probability vector, on a channel dimension.

One implementation serves per-pixel maps (``(C, H, W)``, ``dim=0``) and per-image rows
(``(N, C)``, ``dim=1``). Conventions: ``docs/metrics.md#confidence-scores``.

* ``max-prob``: ``max_c p_c`` (binary ``max(p, 1 - p)``), Hendrycks & Gimpel 2017;
* ``entropy``: the confidence ``1 - H(p) / log C`` (C = 2 for a binary map);
* a head's own map (e.g. EDL's vacuity) is mapped onto a [0, 1] confidence by
  :func:`confidence_from_score`.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

__all__ = ['BUILTIN_SCORES', 'normalised_entropy', 'binary_normalised_entropy', 'confidence_from_score',
           'check_score_args']

#: Built-in confidence scores, higher = more confident, all in [0, 1].
BUILTIN_SCORES = ('max-prob', 'entropy')


def normalised_entropy(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``H(p) / log C`` along ``dim`` (in [0, 1]; 0 for one class), computed in float64."""
    c = probs.shape[dim]
    pr = probs.double()
    ent = -torch.special.xlogy(pr, pr).sum(dim)
    return ent / math.log(c) if c > 1 else torch.zeros_like(ent)


def binary_normalised_entropy(p: torch.Tensor) -> torch.Tensor:
    """``H([1 - p, p]) / log 2`` of a foreground probability map, computed in float64."""
    p = p.double()
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)) / math.log(2)


def check_score_args(score: str, score_field: Optional[str], score_is: Optional[str],
                     score_range: Sequence[float]) -> str:
    """Check the options that choose a score (built-in ``score`` or a map ``score_field`` with
    its direction ``score_is`` and ``score_range``); return ``score_is`` (its default is
    'confidence' for a built-in score and 'uncertainty' for a field)."""
    if score_field is None and score not in BUILTIN_SCORES:
        raise ValueError(f'score must be one of {BUILTIN_SCORES} (or give score_field), got {score!r}')
    if score_is is None:
        score_is = 'confidence' if score_field is None else 'uncertainty'
    if score_is not in ('confidence', 'uncertainty'):
        raise ValueError(f"score_is must be 'confidence' or 'uncertainty', got {score_is!r}")
    if len(score_range) != 2 or not (math.isfinite(score_range[0]) and math.isfinite(score_range[1])) \
            or not score_range[0] < score_range[1]:
        raise ValueError(f'score_range must be two finite numbers lo < hi, got {score_range!r}')
    return score_is


def confidence_from_score(m: torch.Tensor, score_range: Sequence[float] = (0.0, 1.0),
                          score_is: str = 'uncertainty', name: str = 'score') -> torch.Tensor:
    """Map a score onto a confidence in [0, 1]: linearly from ``score_range = (lo, hi)``, then
    flipped (``1 - x``) for ``score_is='uncertainty'`` (higher = less confident).

    Values outside ``score_range`` or non-finite raise ``ValueError`` naming ``name``: the range
    fixes the histogram's resolution, and ranking metrics depend only on the order, so any range
    that holds the values gives the same AUROC / AURC up to binning.
    """
    if not m.is_floating_point() or m.dtype in (torch.float16, torch.bfloat16):
        m = m.float()
    lo, hi = float(score_range[0]), float(score_range[1])
    if m.numel():
        mn, mx = (v.item() for v in torch.aminmax(m))
        if not (math.isfinite(mn) and math.isfinite(mx)):
            bad = ~torch.isfinite(m)
            raise ValueError(f'{name} contains {int(bad.sum())} non-finite value(s)')
        if mn < lo or mx > hi:
            raise ValueError(f'{name} has values in [{mn:.4g}, {mx:.4g}], outside score_range=({lo:g}, '
                             f'{hi:g}); set score_range to the range of this score')
    x = (m - lo) / (hi - lo) if (lo, hi) != (0.0, 1.0) else m
    x = x.clamp(0, 1)  # only rounding of the affine map can leave [0, 1] here
    return 1 - x if score_is == 'uncertainty' else x
