"""Image-level selective prediction: one report per model from its ``(N, K)`` outputs.

A classifier predicts ``argmax_c p_c`` with ``p = softmax(z)`` (or ``p`` as given, kind
``'probs'``) and ranks its predictions by a confidence (higher = more confident); rejecting the
least confident ones trades coverage for risk (Geifman & El-Yaniv, 2017, NeurIPS; Galil et al.,
"What Can We Learn From The Selective Prediction And Uncertainty Estimation Performance Of 523
ImageNet Classifiers", 2023, ICLR). :func:`selective_report` gives, from :mod:`.functional` only
(no second implementation of a metric; conventions ``docs/metrics.md#selective-prediction``):

* ``accuracy``, ``ECE`` (top-label ``max_c p_c``, ``n_bins`` equal-width bins ``(k/n, (k+1)/n]``),
  ``NLL = -mean log max(p_y, 1e-12)``, ``Brier = mean sum_c (p_c - [c = y])^2``;
* per confidence ``c``: ``AURC = (1/N) sum_k risk(k)`` (ties in expectation), ``E-AURC`` (AURC minus
  the AURC of the perfect ordering), ``AUROC`` (correct vs incorrect, Mann-Whitney, ties 1/2),
  ``cov@acc<a>`` (largest coverage with selective accuracy >= a; 0.0 if none), ``risk@cov<v>``
  (risk of the ``ceil(v N)`` most confident);
* with OOD outputs ``ood_z``: ``OOD-AUROC`` and ``OOD-FPR<t>`` (the fraction of OOD samples
  accepted at the highest threshold accepting ``t`` of the in-distribution ones), in-distribution
  the positive class, scored by the same confidence.

Confidences (:func:`confidence_scores`): ``max-prob`` ``max_c p_c``; ``entropy`` ``1 - H(p) / log K``;
``margin`` ``p_(1) - p_(2)``; and a layer's own scores (:data:`uqseg.core.scores.SCORES`: EDL's
``vacuity`` as ``1 - u``, DisMax's ``MDS`` / ``MMLS`` / ``MMLES`` as ``1 / (1 - x)``, ...), i.e.
:func:`uqseg.core.scores.score_confidence` of :func:`uqseg.core.scores.raw_score`: order
preserving maps onto [0, 1] of the raw score, or of its negation where a lower raw score means more
confident (``entropy``, ``vacuity``), so every ranking metric equals that of the raw score (negated
for those two).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from .binning import bin_sums, reliability
from .checks import check_n_bins, check_tpr
from .functional import calibration_error, score_sums, selective_metrics, threshold_metrics
from .scores import (
    OUTPUT_KINDS,
    SCORE_KINDS,
    check_score_available,
    check_score_name,
    normalised_entropy,
    raw_score,
    score_confidence,
    top2_margin,
)

__all__ = ['CONFIDENCES', 'INPUT_KINDS', 'PROB_SCORES', 'confidence_scores', 'probabilities', 'check_outputs',
           'selective_report']

#: The default confidences of every model (any output kind, ``'probs'`` included).
CONFIDENCES = ('max-prob', 'entropy', 'margin')
#: What the rows of ``z`` are: an output kind of :data:`uqseg.core.scores.OUTPUT_KINDS` (``p =
#: softmax(z)``) or ``'probs'`` (``z`` is ``p``).
INPUT_KINDS = tuple(OUTPUT_KINDS) + ('probs',)
#: The scores that are functions of ``p`` alone, the only ones of kind ``'probs'``.
PROB_SCORES = tuple(name for name, kinds in SCORE_KINDS.items() if set(kinds) == set(OUTPUT_KINDS))
#: Tolerance on the row sums of ``'probs'`` rows.
PROB_SUM_TOL = 1e-3


def _check_kind(kind: str) -> None:
    if kind not in INPUT_KINDS:
        raise ValueError(f'kind must be one of {INPUT_KINDS}, got {kind!r}')


def _check_names(names, kind: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(dict.fromkeys(names))  # duplicates once, order kept
    for name in names:
        check_score_name(name, 'confidences')
        if kind == 'probs':
            if name not in PROB_SCORES:
                raise ValueError(f"confidences={name!r} needs a layer's raw outputs, but kind='probs' rows are "
                                 f'probabilities; their confidences are {PROB_SCORES}')
        else:
            check_score_available(name, kind, key='confidences', model=f'kind={kind!r}')
    return names


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{name} must be a torch.Tensor or numpy array, got {type(x).__name__}')
    return x


def check_outputs(z, kind: str = 'logits', name: str = 'z', num_classes: Optional[int] = None) -> torch.Tensor:
    """Check ``(N, K)`` model outputs of ``kind`` and return them as a tensor.

    Raises ``ValueError`` naming ``name``: not 2-D floating point, ``K`` other than
    ``num_classes``, rows with NaN / Inf (the count and the first row), and for ``'probs'`` values
    outside [0, 1] or rows whose sum is more than ``PROB_SUM_TOL`` away from 1.
    """
    _check_kind(kind)
    z = _as_tensor(z, name)
    if z.dim() != 2 or not z.is_floating_point():
        raise ValueError(f'{name} must be a 2-D (N, K) floating-point tensor, got shape {tuple(z.shape)} '
                         f'and dtype {z.dtype}')
    if num_classes is not None and z.shape[1] != num_classes:
        raise ValueError(f'{name} has {z.shape[1]} classes (columns), expected {num_classes}')
    if not bool(torch.isfinite(z.sum(1)).all()):  # a row sum is finite unless the row holds NaN / Inf
        bad = (~torch.isfinite(z)).any(1)
        if bool(bad.any()):
            raise ValueError(f'{name}: {int(bad.sum())} row(s) hold NaN/Inf values, the first is row '
                             f'{int(bad.nonzero()[0, 0])}')
    if kind == 'probs' and z.numel():
        bad = ((z < 0) | (z > 1)).any(1)
        if bool(bad.any()):
            r = int(bad.nonzero()[0, 0])
            raise ValueError(f"{name}: kind='probs' values must lie in [0, 1]; {int(bad.sum())} row(s) do not, "
                             f'the first is row {r}: {z[r].tolist()[:10]}')
        dev = (z.double().sum(1) - 1).abs()
        bad = dev > PROB_SUM_TOL
        if bool(bad.any()):
            r = int(bad.nonzero()[0, 0])
            raise ValueError(f"{name}: kind='probs' rows must sum to 1 (tolerance {PROB_SUM_TOL:g}); "
                             f'{int(bad.sum())} row(s) do not, the first is row {r} (sum '
                             f"{float(z[r].double().sum()):.6g}); pass logits with kind='logits' instead")
    return z


def probabilities(z: torch.Tensor, kind: str = 'logits', dim: int = 1) -> torch.Tensor:
    """``p`` in float64: ``softmax(z)`` along ``dim`` for an output kind, ``z`` itself for ``'probs'``."""
    _check_kind(kind)
    return z.double() if kind == 'probs' else torch.softmax(z.double(), dim)


def _confidence(name: str, z: torch.Tensor, p: torch.Tensor, kind: str, dim: int) -> torch.Tensor:
    """One confidence (float64, higher = more confident, in [0, 1]); ``p`` from :func:`probabilities`."""
    k = p.shape[dim]
    if name in ('max-prob', 'MPS'):
        return p.amax(dim)
    if name == 'margin':
        return top2_margin(p, dim)
    if name == 'entropy':
        return score_confidence(name, normalised_entropy(p, dim), k)
    if name == 'ES':
        return score_confidence(name, -normalised_entropy(p, dim) * math.log(k), k)
    return score_confidence(name, raw_score(name, z, dim).double(), k)


def confidence_scores(z: torch.Tensor, kind: str = 'logits', names: Sequence[str] = CONFIDENCES,
                      dim: int = 1) -> dict[str, torch.Tensor]:
    """Each confidence of ``names`` for the outputs ``z`` (classes on ``dim``), float64, in [0, 1],
    higher = more confident (see the module docstring for the maps and their signs).

    ``kind``: ``'logits'`` | ``'log_alpha'`` | ``'distance_logits'`` (``p = softmax(z)``; the
    layer scores of :data:`uqseg.core.scores.SCORE_KINDS` exist for their kind only) or
    ``'probs'`` (``z`` is ``p``; only :data:`PROB_SCORES`: max-prob, entropy, margin, MPS, ES).
    An unknown or unavailable name raises ``ValueError`` naming ``confidences``.
    """
    _check_kind(kind)
    names = _check_names(names, kind)
    z = _as_tensor(z, 'z')
    p = probabilities(z, kind, dim)
    return {name: _confidence(name, z, p, kind, dim) for name in names}


def _subsample(cov: torch.Tensor, risk: torch.Tensor, points: int) -> dict[str, torch.Tensor]:
    n = cov.numel()
    if n > points:
        idx = torch.linspace(0, n - 1, points, dtype=torch.float64).round().long().unique()
        cov, risk = cov[idx], risk[idx]
    return {'coverage': cov.cpu(), 'risk': risk.cpu()}


def selective_report(z, labels, kind: str = 'logits', confidences: Sequence[str] = CONFIDENCES,
                     accuracy_targets: Sequence[float] = (0.95, 0.99),
                     coverages: Sequence[float] = (0.5, 0.8, 0.9, 0.95), n_bins: int = 15,
                     ood_z=None, fpr_tpr: float = 0.95, curves: bool = False, curve_points: int = 1000) -> dict:
    """The selective-prediction report of one model (keys and formulas: module docstring).

    Args:
        z: ``(N, K)`` outputs of ``kind`` (tensor or numpy array, any device).
        labels: ``(N,)`` integer labels in ``[0, K)``.
        kind: see :func:`confidence_scores`.
        confidences: names of :func:`confidence_scores`; keys ``AURC[<name>]`` etc.
        accuracy_targets: ``a`` of ``cov@acc<a:g>[<name>]``, each in [0, 1].
        coverages: ``v`` of ``risk@cov<v:g>[<name>]``, each in (0, 1].
        n_bins: equal-width bins of ``ECE``.
        ood_z: optional ``(M, K)`` outputs of the same model (same ``kind``) on OOD data:
            ``OOD-AUROC[<name>]``, ``OOD-FPR<round(100 fpr_tpr)>[<name>]``.
        curves: also ``'curves'`` = ``{name: {'coverage', 'risk'}}`` (CPU float64, at most
            ``curve_points`` points of :func:`uqseg.core.functional.risk_coverage_curve`, the last
            one included) and ``'reliability'`` (:func:`uqseg.core.binning.reliability` of the
            top-label confidence in ``n_bins`` bins).

    Returns a dict of floats (plus the two curve entries with ``curves``); NaN where a value is
    undefined (AUROC with only one class present, empty input). Bad input raises ``ValueError``:
    NaN/Inf rows (count and first row), labels outside ``[0, K)``, ``'probs'`` rows not summing
    to 1 (tolerance 1e-3), mismatched shapes, bad targets / coverages / ``n_bins``.
    """
    z = check_outputs(z, kind, 'z')
    n, k = z.shape
    labels = _as_tensor(labels, 'labels')
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f'labels must have shape ({n},) to match z {tuple(z.shape)}, got {tuple(labels.shape)}')
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f'labels must hold integer class indices, got dtype {labels.dtype}')
    labels = labels.to(z.device, torch.int64)
    if n:
        bad = (labels < 0) | (labels >= k)
        if bool(bad.any()):
            r = int(bad.nonzero()[0, 0])
            raise ValueError(f'labels must lie in [0, {k - 1}] (z has {k} classes); {int(bad.sum())} do not, the first '
                             f'is row {r}: {int(labels[r])}')
    names = _check_names(confidences, kind)
    for a in accuracy_targets:
        if not 0 <= a <= 1:
            raise ValueError(f'accuracy_targets must lie in [0, 1], got {a}')
    for v in coverages:
        if not 0 < v <= 1:
            raise ValueError(f'coverages must lie in (0, 1], got {v}')
    check_n_bins(n_bins)
    check_tpr(fpr_tpr)
    if isinstance(curve_points, bool) or not isinstance(curve_points, int) or curve_points < 2:
        raise ValueError(f'curve_points must be an int >= 2, got {curve_points!r}')
    if ood_z is not None:
        ood_z = check_outputs(ood_z, kind, 'ood_z', num_classes=k).to(z.device)

    p = probabilities(z, kind)
    conf_top, pred = p.max(1)
    correct = pred == labels
    nll_sum, brier_sum, count = score_sums(p, labels).tolist()
    out = {'accuracy': float(correct.double().mean()) if n else math.nan,
           'ECE': calibration_error(conf_top, correct, n_bins),
           'NLL': nll_sum / count if count else math.nan,
           'Brier': brier_sum / count if count else math.nan}
    curve_out = {}
    p_ood = probabilities(ood_z, kind) if ood_z is not None else None
    is_id = None
    if ood_z is not None:
        is_id = torch.cat([torch.ones(n, dtype=torch.bool, device=z.device),
                           torch.zeros(ood_z.shape[0], dtype=torch.bool, device=z.device)])
    fpr_name = f'OOD-FPR{round(100 * fpr_tpr)}'
    for name in names:
        conf = _confidence(name, z, p, kind, 1)
        m = selective_metrics(conf, correct, accuracy_targets, coverages, curve=curves)
        out[f'AURC[{name}]'] = m['AURC']
        out[f'E-AURC[{name}]'] = m['E-AURC']
        out[f'AUROC[{name}]'] = m['AUROC']
        for a in accuracy_targets:
            out[f'cov@acc{a:g}[{name}]'] = m['coverage_at_accuracy'][a]
        for v in coverages:
            out[f'risk@cov{v:g}[{name}]'] = m['risk_at_coverage'][v]
        if ood_z is not None:
            conf_ood = _confidence(name, ood_z, p_ood, kind, 1)
            d = threshold_metrics(torch.cat([conf, conf_ood]), is_id, fpr_tpr)
            out[f'OOD-AUROC[{name}]'] = d['AUROC']
            out[f'{fpr_name}[{name}]'] = d['FPR']
        if curves:
            curve_out[name] = _subsample(*m['curve'], curve_points)
    if curves:
        out['curves'] = curve_out
        out['reliability'] = reliability(bin_sums(conf_top, correct, n_bins))
    return out
