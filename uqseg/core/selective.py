"""Image-level selective prediction: one report per model from its ``(N, K)`` outputs.

A classifier predicts ``argmax_c p_c`` with ``p = softmax(z)`` (or ``p`` as given, kind
``'probs'``) and ranks its predictions by a confidence (higher = more confident); rejecting the
least confident ones trades coverage for risk (Geifman & El-Yaniv, 2017, NeurIPS; Galil et al.,
"What Can We Learn From The Selective Prediction And Uncertainty Estimation Performance Of 523
ImageNet Classifiers", 2023, ICLR). :func:`selective_report` gives, from :mod:`.functional` only
(no second implementation of a metric; conventions ``docs/metrics.md#selective-prediction``):

* ``accuracy``, ``ECE`` (top-label ``max_c p_c``, ``n_bins`` equal-width bins ``(k/n, (k+1)/n]``),
  ``NLL = -mean log p_y`` (from the log-softmax, exact; kind ``'probs'``: ``-mean log max(p_y,
  1e-12)`` and, where the clamp changed any row, ``NLL-clamped``, their count), ``Brier = mean
  sum_c (p_c - [c = y])^2``;
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
confident (``entropy``, ``vacuity``). The ranking metrics sort each confidence's ranking key
(:mod:`uqseg.core.confidence_keys`: ``logit(max p) = -log r`` and the like), which has the
confidence's order and ties but does not saturate at 1 for near-certain predictions.

A prediction of several members (an ensemble, MC-dropout passes, TTA views) is scored as one
model from the log of its mean probability, plus its member maps (``member_maps``: the mutual
information, expected entropy, class variance, disagreement of
:mod:`uqseg.core.member_statistics`, and the members' averaged layer scores), ranked by
:func:`uqseg.core.scores.member_score_key` (:func:`map_confidences` says which names they serve).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from .binning import bin_sums, reliability
from .checks import check_n_bins, check_tpr, value_range
from .confidence_keys import (
    CHUNK_VALUES,
    KEYED_SCORES,
    SoftmaxRows,
    close_rows,
    confidence_key,
    fast_softmax_rows,
    probability_rows,
    row_chunks,
    softmax_rows,
)
from .functional import calibration_error, selective_metrics, threshold_metrics
from .scores import (
    INPUT_KINDS,
    PROBS,
    check_member_score,
    check_score_available,
    is_member_score,
    is_probability_score,
    member_score_key,
    raw_score,
    score_confidence,
    scores_of,
)

__all__ = ['CONFIDENCES', 'INPUT_KINDS', 'PROB_SCORES', 'confidence_scores', 'check_outputs',
           'check_labels', 'as_tensor', 'map_confidences', 'check_member_maps',
           'row_statistics', 'exact_where_close', 'confidence_keys',
           'selective_report']

#: The default confidences of every model (any output kind, ``'probs'`` included).
CONFIDENCES = ('max-prob', 'entropy', 'margin')
#: The scores that are functions of ``p`` alone, the only ones of kind ``'probs'``
#: (:data:`uqseg.core.scores.INPUT_KINDS`: an output kind, ``p = softmax(z)``, or ``'probs'``).
PROB_SCORES = scores_of(PROBS)
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
        check_score_available(name, kind, key='confidences', model=f'kind={kind!r}')
    return names


def map_confidences(names, kind: str, member_maps, member_kinds: Sequence[str] = (), source: str = 'the model'
                    ) -> tuple[tuple[str, ...], frozenset]:
    """``(names checked, the names read from the member maps)``. With ``member_maps`` (a prediction
    of several members: name -> raw map) a member score or a layer score (not a function of ``p``)
    is read from them, :func:`uqseg.core.scores.check_member_score` refusing one it lacks (naming
    ``source`` and the members' kinds); the functions of ``p`` are computed from the outputs (the
    mean's) as for one model. Without maps a member score is refused as one model's."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(dict.fromkeys(names))
    from_maps = []
    for name in names:
        if is_member_score(name) or (member_maps is not None and not is_probability_score(name)):
            check_member_score(name, tuple(member_maps or ()), tuple(member_kinds) if member_maps is not None else (),
                               source, key='confidences')
            from_maps.append(name)
        else:
            check_score_available(name, kind, key='confidences', model=f'kind={kind!r}')
    return names, frozenset(from_maps)


def check_member_maps(maps, names, n: int, what: str) -> dict:
    """The maps of ``names`` as float64 ``(n,)`` tensors; a missing one, another length, a non-finite
    value is a ``ValueError`` naming ``what`` and the score."""
    out = {}
    for name in names:
        if maps is None or name not in maps:
            raise ValueError(f'{what}: no {name!r} member map (it holds {sorted(maps or ())})')
        m = as_tensor(maps[name], f'{what}[{name!r}]')
        if m.dim() != 1 or m.shape[0] != n:
            raise ValueError(f'{what}: the {name!r} member map has shape {tuple(m.shape)}, the outputs {n} rows')
        m = m.to(torch.float64)
        if not bool(torch.isfinite(m).all()):
            bad = ~torch.isfinite(m)
            raise ValueError(f'{what}: the {name!r} member map holds {int(bad.sum())} non-finite value(s), the '
                             f'first at row {int(bad.nonzero()[0, 0])}')
        out[name] = m
    return out


def as_tensor(x, name: str) -> torch.Tensor:
    """``x`` (a tensor, or a numpy array shared by the tensor), else ``TypeError`` naming ``name``."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{name} must be a torch.Tensor or numpy array, got {type(x).__name__}')
    return x


def check_outputs(z, kind: str = 'logits', name: str = 'z', num_classes: Optional[int] = None,
                  finite: bool = True) -> torch.Tensor:
    """Check ``(N, K)`` model outputs of ``kind`` and return them as a tensor.

    Raises ``ValueError`` naming ``name``: not 2-D floating point, ``K`` other than
    ``num_classes``, rows with NaN / Inf (the count and the first row), and for ``'probs'`` values
    outside [0, 1] or rows whose sum is more than ``PROB_SUM_TOL`` away from 1. ``finite=False``
    leaves the NaN / Inf pass of an output kind to the caller (:func:`selective_report` finds such
    rows in its statistics and then calls this again).
    """
    _check_kind(kind)
    z = as_tensor(z, name)
    if z.dim() != 2 or not z.is_floating_point():
        raise ValueError(f'{name} must be a 2-D (N, K) floating-point tensor, got shape {tuple(z.shape)} '
                         f'and dtype {z.dtype}')
    if num_classes is not None and z.shape[1] != num_classes:
        raise ValueError(f'{name} has {z.shape[1]} classes (columns), expected {num_classes}')
    if (finite or kind == 'probs') and not bool(torch.isfinite(z.sum(1)).all()):  # finite unless NaN / Inf in it
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


def check_labels(labels, n: int, k: int, name: str = 'labels') -> torch.Tensor:
    """Check ``(N,)`` integer class indices in ``[0, k)`` and return them as int64; ``ValueError``
    naming ``name``, the count of bad labels and the first (row and value)."""
    labels = as_tensor(labels, name)
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f'{name} must have shape ({n},) to match the outputs ({n} rows), got {tuple(labels.shape)}')
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f'{name} must hold integer class indices, got dtype {labels.dtype}')
    labels = labels.to(torch.int64)
    if n:
        bad = (labels < 0) | (labels >= k)
        if bool(bad.any()):
            r = int(bad.nonzero()[0, 0])
            raise ValueError(f'{name} must lie in [0, {k - 1}] ({k} classes); {int(bad.sum())} do not, the first is '
                             f'row {r} (label {int(labels[r])})')
    return labels


def row_statistics(z: torch.Tensor, labels: Optional[torch.Tensor], kind: str = 'logits', entropy: bool = True,
                   name: str = 'z') -> SoftmaxRows:
    """:class:`uqseg.core.confidence_keys.SoftmaxRows` of the ``(N, K)`` outputs ``z`` of ``kind``
    (``labels`` None: no NLL / Brier), computed chunk by chunk (a chunk stays in the cache for its
    passes; no (N, K) float64 copy). float64 outputs and ``'probs'`` rows are computed exactly;
    float32 / float16 outputs in float32 arithmetic with a per-row error bound ``tol``
    (:func:`uqseg.core.confidence_keys.fast_softmax_rows`; the rows it cannot bound are computed
    exactly here), for :func:`exact_where_close` to settle. ``entropy=False`` skips the entropy
    sum (``log_h`` None). A chunk with NaN / Inf sends ``z`` to :func:`check_outputs`, which
    raises naming the rows."""
    n, k = z.shape
    fast = kind != 'probs' and z.dtype in (torch.float32, torch.float16, torch.bfloat16) and k > 1
    out, clamped = None, 0
    for sl in row_chunks(n, k):
        zc = z[sl]
        lo, hi = value_range(zc)  # NaN propagates into both
        if not (math.isfinite(lo.item()) and math.isfinite(hi.item())):
            check_outputs(z, kind, name)  # raises, naming the rows
        yc = None if labels is None else labels[sl]
        if kind == 'probs':
            part = probability_rows(zc, yc, entropy)
        elif not fast:
            part = softmax_rows(zc, yc, entropy)
        else:
            part, unsure = fast_softmax_rows(zc, yc)
            if bool(unsure.any()):
                rows = unsure.nonzero()[:, 0]
                part.replace_rows(rows, softmax_rows(zc[rows], None if yc is None else yc[rows]))
        if out is None:
            out = SoftmaxRows.empty_like(part, n)
        out.replace_rows(sl, part)
        clamped += part.clamped
        del part
    if out is None:
        return probability_rows(z, labels, entropy) if kind == 'probs' else softmax_rows(z, labels, entropy)
    out.clamped = clamped
    if not fast:
        out.a_over_r = out.span = None  # exact throughout
    return out


def exact_where_close(items: Sequence[tuple[torch.Tensor, SoftmaxRows, Optional[torch.Tensor]]],
                      names: Sequence[str]) -> None:
    """Make the keys of ``names`` decide every order they are asked to: for the rows ``(z, st,
    labels)`` of ``items`` (e.g. the in-distribution and the OOD outputs, ranked together), the
    rows whose approximate key is within its error bound of a neighbour's, in any of ``names``
    (:func:`uqseg.core.confidence_keys.close_rows`), are computed exactly (in place). Then rows
    that tie exactly have equal keys and every other pair is in its exact order."""
    keyed = [nm for nm in names if nm in KEYED_SCORES]
    if not keyed or all(st.a_over_r is None for _, st, _ in items):
        return
    sizes = [st.d2.numel() for _, st, _ in items]
    close = torch.zeros(sum(sizes), dtype=torch.bool, device=items[0][1].d2.device)
    for nm in keyed:
        tol = torch.cat([torch.zeros_like(st.d2) if st.a_over_r is None else st.key_tol(nm) for _, st, _ in items])
        close |= close_rows(torch.cat([st.key(nm) for _, st, _ in items]), tol)
    for (z, st, labels), hit in zip(items, close.split(sizes)):
        if st.a_over_r is not None and bool(hit.any()):
            rows = hit.nonzero()[:, 0]
            for part in rows.split(max(1, CHUNK_VALUES // max(z.shape[1], 1))):
                st.replace_rows(part, softmax_rows(z[part], None if labels is None else labels[part],
                                                   entropy=st.log_a is not None))


def _needs_entropy(names: Sequence[str]) -> bool:
    return any(n in ('entropy', 'ES') for n in names)


def _stat_confidence(name: str, st: SoftmaxRows, k: int) -> Optional[torch.Tensor]:
    """The confidences that are functions of ``p`` alone, from :func:`row_statistics`; None for a
    layer's own score (computed from its raw outputs)."""
    if name in ('max-prob', 'MPS'):
        return st.max_prob
    if name == 'margin':
        return st.margin.clamp(0, 1)
    if name == 'entropy':
        return score_confidence(name, (-st.neg_entropy / math.log(k)).clamp(0, 1) if k > 1
                                else torch.zeros_like(st.d2), k)
    if name == 'ES':
        return score_confidence(name, st.neg_entropy.clamp(max=0), k)
    return None


def _key_of(name: str, z: torch.Tensor, st: SoftmaxRows, kind: str) -> torch.Tensor:
    """The ranking key of confidence ``name`` (:mod:`uqseg.core.confidence_keys`): from the row
    statistics for the functions of ``p``, else from the layer's raw outputs, chunk by chunk."""
    if name in KEYED_SCORES:
        return st.key(name)
    return torch.cat([confidence_key(name, z[sl], kind) for sl in row_chunks(*z.shape)]) if z.shape[0] else \
        torch.zeros(0, dtype=torch.float64, device=z.device)


def confidence_scores(z: torch.Tensor, kind: str = 'logits', names: Sequence[str] = CONFIDENCES,
                      dim: int = 1) -> dict[str, torch.Tensor]:
    """Each confidence of ``names`` for the outputs ``z`` (classes on ``dim``), float64, in [0, 1],
    higher = more confident (see the module docstring for the maps and their signs).

    ``kind``: ``'logits'`` | ``'log_alpha'`` | ``'distance_logits'`` (``p = softmax(z)``; the
    layer scores of :data:`uqseg.core.scores.SCORE_TABLE` exist for their kind only) or
    ``'probs'`` (``z`` is ``p``; only :data:`PROB_SCORES`: max-prob, entropy, margin, MPS, ES).
    An unknown or unavailable name raises ``ValueError`` naming ``confidences``.
    """
    names, z, shape, st = _rows_of(z, kind, names, dim)
    return {name: _confidence_of(name, z, st, kind).reshape(shape) for name in names}


def _rows_of(z, kind: str, names, dim: int):
    """``names`` checked, ``z`` as ``(rows, K)`` with the classes on ``dim`` moved last, the shape
    of the rows, and their :func:`row_statistics` (no labels)."""
    _check_kind(kind)
    names = _check_names(names, kind)
    z = as_tensor(z, 'z').movedim(dim, -1)
    shape = z.shape[:-1]
    z = z.reshape(-1, z.shape[-1])
    return names, z, shape, row_statistics(z, None, kind, entropy=_needs_entropy(names))


def confidence_keys(z: torch.Tensor, kind: str = 'logits', names: Sequence[str] = CONFIDENCES,
                    dim: int = 1) -> dict[str, torch.Tensor]:
    """The ranking key of each confidence of ``names`` (float64, higher = more confident, the
    confidence's order and ties, resolved where the confidence saturates; see
    :mod:`uqseg.core.confidence_keys`). Arguments as :func:`confidence_scores`."""
    names, z, shape, st = _rows_of(z, kind, names, dim)
    exact_where_close([(z, st, None)], names)
    return {name: _key_of(name, z, st, kind).reshape(shape) for name in names}


def _confidence_of(name: str, z: torch.Tensor, st: SoftmaxRows, kind: str) -> torch.Tensor:
    conf = _stat_confidence(name, st, z.shape[1])
    return conf if conf is not None else score_confidence(name, raw_score(name, z, 1).double(), z.shape[1])


def _subsample(cov: torch.Tensor, risk: torch.Tensor, points: int) -> dict[str, torch.Tensor]:
    n = cov.numel()
    if n > points:
        idx = torch.linspace(0, n - 1, points, dtype=torch.float64).round().long().unique()
        cov, risk = cov[idx], risk[idx]
    return {'coverage': cov.cpu(), 'risk': risk.cpu()}


def selective_report(z, labels, kind: str = 'logits', confidences: Sequence[str] = CONFIDENCES,
                     accuracy_targets: Sequence[float] = (0.95, 0.99),
                     coverages: Sequence[float] = (0.5, 0.8, 0.9, 0.95), n_bins: int = 15,
                     ood_z=None, fpr_tpr: float = 0.95, curves: bool = False, curve_points: int = 1000,
                     member_maps=None, ood_member_maps=None, member_kinds: Sequence[str] = (),
                     source: str = 'the model') -> dict:
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
        member_maps: for a prediction of several members (ensemble, MC dropout, TTA; ``z`` the
            log of their mean probability): name -> ``(N,)`` raw map
            (:meth:`uqseg.core.member_statistics.MemberStatistics.maps`); the member scores and
            averaged layer scores of ``confidences`` are ranked by
            :func:`uqseg.core.scores.member_score_key` of them (:func:`map_confidences`), with
            ``ood_member_maps`` (``(M,)`` each) on the OOD rows. ``member_kinds``, ``source``: the
            members' kinds and the prediction's name in errors.

    Returns a dict of floats (plus the two curve entries with ``curves``); NaN where a value is
    undefined (AUROC with only one class present, empty input). Bad input raises ``ValueError``:
    NaN/Inf rows (count and first row), labels outside ``[0, K)``, ``'probs'`` rows not summing
    to 1 (tolerance 1e-3), mismatched shapes, bad targets / coverages / ``n_bins``.
    """
    z = check_outputs(z, kind, 'z', finite=False)
    n, k = z.shape
    labels = check_labels(labels, n, k).to(z.device)
    names, from_maps = map_confidences(confidences, kind, member_maps, member_kinds, source)
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
    maps = {name: m.to(z.device) for name, m in check_member_maps(member_maps, from_maps, n, 'member_maps').items()}
    ood_maps = {} if ood_z is None else {
        name: m.to(z.device) for name, m in check_member_maps(ood_member_maps, from_maps, ood_z.shape[0],
                                                              'ood_member_maps').items()}

    entropy = _needs_entropy(names)
    st = row_statistics(z, labels, kind, entropy, 'z')
    st_ood = row_statistics(ood_z, None, kind, entropy, 'ood_z') if ood_z is not None else None
    exact_where_close([(z, st, labels)] + ([(ood_z, st_ood, None)] if ood_z is not None else []),
                      [nm for nm in names if nm not in from_maps])
    conf_top = st.max_prob
    correct = st.pred == labels
    out = {'accuracy': float(correct.double().mean()) if n else math.nan,
           'ECE': calibration_error(conf_top, correct, n_bins),
           'NLL': float(st.nll.mean()) if n else math.nan,
           'Brier': float(st.brier.mean()) if n else math.nan}
    if st.clamped:  # probability rows only (logits need no clamp): say that the NLL is not the model's
        out['NLL-clamped'] = float(st.clamped)
    curve_out = {}
    is_id = None
    if ood_z is not None:
        is_id = torch.cat([torch.ones(n, dtype=torch.bool, device=z.device),
                           torch.zeros(ood_z.shape[0], dtype=torch.bool, device=z.device)])
    fpr_name = f'OOD-FPR{round(100 * fpr_tpr)}'
    for name in names:
        key = member_score_key(name, maps[name]) if name in from_maps else _key_of(name, z, st, kind)
        m = selective_metrics(key, correct, accuracy_targets, coverages, curve=curves, keys=True)
        out[f'AURC[{name}]'] = m['AURC']
        out[f'E-AURC[{name}]'] = m['E-AURC']
        out[f'AUROC[{name}]'] = m['AUROC']
        for a in accuracy_targets:
            out[f'cov@acc{a:g}[{name}]'] = m['coverage_at_accuracy'][a]
        for v in coverages:
            out[f'risk@cov{v:g}[{name}]'] = m['risk_at_coverage'][v]
        if ood_z is not None:
            key_ood = member_score_key(name, ood_maps[name]) if name in from_maps else \
                _key_of(name, ood_z, st_ood, kind)
            d = threshold_metrics(torch.cat([key, key_ood]), is_id, fpr_tpr, keys=True)
            out[f'OOD-AUROC[{name}]'] = d['AUROC']
            out[f'{fpr_name}[{name}]'] = d['FPR']
        if curves:
            curve_out[name] = _subsample(*m['curve'], curve_points)
    if curves:
        out['curves'] = curve_out
        out['reliability'] = reliability(bin_sums(conf_top, correct, n_bins))
    return out
