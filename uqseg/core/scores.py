"""Confidence and uncertainty scores of a model's outputs, on a channel dimension: one table.

One implementation serves per-pixel maps (``(C, H, W)``, ``dim=0``) and per-image rows
(``(N, C)``, ``dim=1``). Conventions: ``docs/metrics.md#confidence-scores``.

:data:`SCORE_TABLE` maps every named score to the input kinds it exists for, the function of the
outputs ``z`` (of that kind, classes on ``dim``) that gives it as its paper defines it, and its
direction; :func:`raw_score` is the one call that checks a name against a kind and computes it.

* ``max-prob``: ``max_c p_c`` (binary ``max(p, 1 - p)``), Hendrycks & Gimpel 2017;
* ``entropy``: the uncertainty ``H(p) / log C`` (C = 2 for a binary map);
* ``margin``: ``p_(1) - p_(2)``, the gap between the two largest probabilities (the margin
  score of selective classification, e.g. Galil et al. 2023, ICLR), every output kind;
* the named scores of an output layer's channels: EDL's ``vacuity`` and DisMax's ``MPS``,
  ``ES``, ``MDS``, ``MMLS``, ``MMLES``;
* the member scores of an ensemble, MC-dropout passes or TTA views (:data:`MEMBER_SCORES`:
  ``mutual-information``, ``expected-entropy``, ``class-variance``, ``disagreement``), which are
  not functions of one output but maps the members' statistics give
  (:mod:`uqseg.core.member_statistics`); a prediction carries them, and
  :func:`check_member_score` is the one rule of which exist for it.

A raw score is mapped onto a [0, 1] confidence by :func:`score_confidence` (order-preserving)
where a bounded confidence is needed; the ranking metrics rank by
:func:`uqseg.core.confidence_keys.confidence_key` instead, which does not saturate. A map a head
puts in the data sample is mapped onto a [0, 1] confidence by :func:`confidence_from_score`.

What the outputs are (:data:`INPUT_KINDS`) decides which scores exist: ``logits`` (any plain
head; softmax = p), ``log_alpha`` (EDL: ``z = log alpha``, ``S = sum exp z``),
``distance_logits`` (DisMax / IsoMax+: ``z = L / T <= 0``), and ``probs`` (``z`` is ``p``
itself: only the scores that are functions of ``p``).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Sequence

import torch

from .checks import value_range
from .confidence_keys import distance_score
from .evidential import vacuity

__all__ = ['BUILTIN_SCORES', 'OUTPUT_KINDS', 'INPUT_KINDS', 'PROBS', 'NamedScore', 'SCORE_TABLE', 'SCORES',
           'SCORE_KINDS', 'OWN_SCORE', 'OUTPUT_KIND_KEY', 'OUTPUT_SOURCE_KEY', 'OWN_SCORE_KEY',
           'normalised_entropy', 'top2_margin', 'confidence_from_score',
           'check_score_args', 'check_score_name', 'scores_of', 'check_score_available', 'is_probability_score',
           'raw_score', 'score_confidence', 'MEMBER_SCORES', 'MEMBERS_KEY', 'MEMBER_SCORES_KEY', 'MEMBER_KINDS_KEY',
           'is_member_score', 'member_score_confidence', 'member_score_key', 'check_member_score']

#: Built-in confidence scores of every head, higher = more confident, all in [0, 1].
BUILTIN_SCORES = ('max-prob', 'entropy', 'margin')
#: What an output layer's channels are, and the layers that produce them.
OUTPUT_KINDS = {'logits': 'a plain head (softmax of the channels = p)',
                'log_alpha': "an EDL layer (channels = log alpha; output_layer=dict(type='EDLLayer'))",
                'distance_logits': "a DisMax / IsoMax+ layer (channels = L / T <= 0; "
                                   "output_layer=dict(type='DisMaxLayer'))"}
#: The kind of outputs that are probabilities themselves (``pred_score``, a sigmoid map).
PROBS = 'probs'
#: Every kind of outputs a score can be computed from: an output kind or :data:`PROBS`.
INPUT_KINDS = tuple(OUTPUT_KINDS) + (PROBS,)
#: The score name that stands for the model's own score (``score='own'`` in a metric or hook).
OWN_SCORE = 'own'
#: Metainfo keys a head with an output layer puts in each predicted data sample (both front
#: ends): its output kind, who produced it (for messages) and its own score.
OUTPUT_KIND_KEY, OUTPUT_SOURCE_KEY, OWN_SCORE_KEY = 'output_kind', 'output_source', 'default_score'
#: The uncertainties of several members (an ensemble, MC-dropout passes, TTA views), higher = less
#: confident, each a map of :class:`uqseg.core.member_statistics.MemberStatistics`: the mutual
#: information (epistemic, nats), the expected entropy (aleatoric, nats), the variance over members
#: of the predicted class's probability and the share of members that disagree with the mean's
#: class. The predictive entropy is ``entropy`` of the mean.
MEMBER_SCORES = ('mutual-information', 'expected-entropy', 'class-variance', 'disagreement')
#: Metainfo keys of a prediction of several members: their number, the names of the score maps it
#: carries (:data:`MEMBER_SCORES` and the members' averaged layer scores) and the members' kinds.
MEMBERS_KEY, MEMBER_SCORES_KEY, MEMBER_KINDS_KEY = 'members', 'member_scores', 'member_kinds'


def _probs(z: torch.Tensor, kind: str, dim: int) -> torch.Tensor:
    return z if kind == PROBS else z.softmax(dim)


def normalised_entropy(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``H(p) / log C`` along ``dim`` (in [0, 1]; 0 for one class), computed in float64."""
    c = probs.shape[dim]
    pr = probs.double()
    ent = -torch.special.xlogy(pr, pr).sum(dim)
    return ent / math.log(c) if c > 1 else torch.zeros_like(ent)


def top2_margin(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``p_(1) - p_(2)`` along ``dim``: the largest probability minus the second largest, in [0, 1]
    (0 when the two top classes tie; 1 for a single class, whose only probability has no rival)."""
    if probs.shape[dim] < 2:
        return torch.ones_like(probs.select(dim, 0)) if probs.shape[dim] == 1 else probs.sum(dim)
    top = probs.topk(2, dim=dim).values
    return top.select(dim, 0) - top.select(dim, 1)


def _neg_entropy(z: torch.Tensor, kind: str, dim: int) -> torch.Tensor:
    """``sum_j p_j log p_j = -H(p)``, float64 (from :func:`normalised_entropy`)."""
    return -normalised_entropy(_probs(z, kind, dim), dim) * math.log(z.shape[dim])


def _layer_score(name: str):
    """DisMax's score ``name`` of distance logits on ``dim`` (the one implementation,
    :func:`uqseg.core.confidence_keys.distance_score`, on rows)."""
    def raw(z: torch.Tensor, kind: str, dim: int) -> torch.Tensor:
        rows = z.movedim(dim, -1)
        return distance_score(name, rows.reshape(-1, rows.shape[-1])).reshape(rows.shape[:-1])
    return raw


class NamedScore(NamedTuple):
    """One named score: the input kinds it exists for (:data:`INPUT_KINDS`), its value as its
    paper defines it, ``raw(z, kind, dim)`` of outputs ``z`` of that kind with the classes on
    ``dim``, and its direction."""
    kinds: tuple[str, ...]
    raw: Callable[[torch.Tensor, str, int], torch.Tensor]
    higher_is_confident: bool


_OF_P = INPUT_KINDS  # the functions of p exist for every kind
#: Every named score (``p = softmax(z)``, or ``z`` itself for kind ``'probs'``)::
#:
#:     max-prob, MPS  max_j p_j                 entropy  H(p) / log K      ES  sum_j p_j log p_j
#:     margin         p_(1) - p_(2)             (the two largest p_j)
#:     vacuity        K / sum_j exp(z_j)        (z = log alpha; Sensoy et al. 2018)
#:     MDS            max_j z_j                 MMLS     max_j z_j + mean_j z_j
#:     MMLES          max_j z_j + mean_j z_j + sum_j p_j log p_j    (z = L / T; Macedo & Ludermir 2022)
#:
#: Higher = more confident except ``entropy`` and ``vacuity``.
SCORE_TABLE: dict[str, NamedScore] = {
    'max-prob': NamedScore(_OF_P, lambda z, kind, dim: _probs(z, kind, dim).amax(dim), True),
    'entropy': NamedScore(_OF_P, lambda z, kind, dim: normalised_entropy(_probs(z, kind, dim), dim), False),
    'margin': NamedScore(_OF_P, lambda z, kind, dim: top2_margin(_probs(z, kind, dim), dim), True),
    'MPS': NamedScore(_OF_P, lambda z, kind, dim: _probs(z, kind, dim).amax(dim), True),
    'ES': NamedScore(_OF_P, _neg_entropy, True),
    'vacuity': NamedScore(('log_alpha',), lambda z, kind, dim: vacuity(z.double(), dim), False),
    'MDS': NamedScore(('distance_logits',), _layer_score('MDS'), True),
    'MMLS': NamedScore(('distance_logits',), _layer_score('MMLS'), True),
    'MMLES': NamedScore(('distance_logits',), _layer_score('MMLES'), True),
}
SCORES = tuple(SCORE_TABLE)
#: The output kinds (not ``'probs'``) each score exists for, from :data:`SCORE_TABLE`.
SCORE_KINDS: dict[str, tuple[str, ...]] = {name: tuple(k for k in s.kinds if k in OUTPUT_KINDS)
                                           for name, s in SCORE_TABLE.items()}


def check_score_name(score: str, key: str = 'score') -> str:
    """Return ``score`` if it names a score of :data:`SCORES` or :data:`MEMBER_SCORES`, else raise
    naming ``key``."""
    if score not in SCORE_TABLE and score not in MEMBER_SCORES:
        raise ValueError(f'{key}={score!r} is not a score; the scores are {SCORES} (vacuity: EDL; '
                         f'MDS / MMLS / MMLES: DisMax / IsoMax+) and, of several members, {MEMBER_SCORES}')
    return score


def is_member_score(score: str) -> bool:
    """Whether ``score`` is one of :data:`MEMBER_SCORES` (a map of several members, not of one output)."""
    return score in MEMBER_SCORES


def _needs_members(score: str, key: str, model: str, kind: Optional[str] = None) -> ValueError:
    has = f'its scores are {scores_of(kind)}' if kind is not None else f'one model has {SCORES}'
    return ValueError(f'{key}={score!r} needs several members (an EnsembleSegmentor / EnsembleClassifier, '
                      f'MC dropout or TTA views), but {model} is one model; {has}')


def _check_kind(kind: str) -> None:
    if kind not in INPUT_KINDS:
        raise ValueError(f'unknown output kind {kind!r}; known: {INPUT_KINDS}')


def scores_of(kind: str) -> tuple[str, ...]:
    """The scores defined for an input kind (:data:`INPUT_KINDS`)."""
    _check_kind(kind)
    return tuple(name for name, s in SCORE_TABLE.items() if kind in s.kinds)


def is_probability_score(score: str) -> bool:
    """Whether ``score`` is a function of ``p`` alone (so it can be computed from probabilities)."""
    return not is_member_score(check_score_name(score)) and PROBS in SCORE_TABLE[score].kinds


def _kind_text(kind: str) -> str:
    return OUTPUT_KINDS.get(kind, 'probabilities')


def check_score_available(score: str, kind: str, key: str = 'score', model: str = 'the model') -> None:
    """Raise ``ValueError`` naming ``key`` when ``score`` is not defined for ``kind``."""
    check_score_name(score, key)
    _check_kind(kind)
    if is_member_score(score):
        raise _needs_members(score, key, model, kind)
    kinds = SCORE_TABLE[score].kinds
    if kind not in kinds:
        need = ' or '.join(_kind_text(k) for k in kinds)
        raise ValueError(f'{key}={score!r} needs {need}, but {model} outputs {kind} ({_kind_text(kind)}); '
                         f'its scores are {scores_of(kind)}')


def raw_score(score: str, z: torch.Tensor, dim: int = 1, kind: Optional[str] = None, key: str = 'score',
              model: str = 'the model') -> torch.Tensor:
    """The score as its paper defines it (:data:`SCORE_TABLE`), from outputs ``z`` of ``kind``
    with the classes on ``dim`` (float64 where it matters). ``kind`` given: a score that does not
    exist for it raises ``ValueError`` naming ``key`` and ``model``; ``kind=None`` computes it from
    ``z`` as the kind the score is defined for (``softmax(z) = p`` for the functions of ``p``)."""
    if kind is None:
        if is_member_score(check_score_name(score, key)):
            raise _needs_members(score, key, model)
        entry = SCORE_TABLE[score]
        kind = entry.kinds[0]
    else:
        check_score_available(score, kind, key, model)
        entry = SCORE_TABLE[score]
    return entry.raw(z, kind, dim)


def score_confidence(score: str, raw: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Map a :func:`raw_score` onto a confidence in [0, 1], higher = more confident, preserving
    the order of confidence (so AUROC / AURC are unchanged up to binning)::

        max-prob, MPS, margin   as is                      entropy   1 - H / log K
        ES                      1 + ES / log K             vacuity   1 - u
        MDS, MMLS, MMLES (<= 0) 1 / (1 - x)

    ``1 / (1 - x)`` keeps the resolution of a 10,000-bin histogram at about one score unit
    at x = -100 and 4e-4 units at x = -1: the DisMax scores have no fixed lower bound (they
    scale with the learnt ``|s|`` and ``1 / T``).
    """
    if is_member_score(check_score_name(score)):
        return member_score_confidence(score, raw, num_classes)
    if score in ('max-prob', 'MPS', 'margin'):
        out = raw
    elif score == 'entropy' or score == 'vacuity':
        out = 1 - raw
    elif score == 'ES':
        out = 1 + raw / math.log(num_classes) if num_classes > 1 else torch.ones_like(raw)
    else:
        out = 1 / (1 - raw.clamp(max=0))
    return out.clamp(0, 1)


def check_score_args(score: str, score_field: Optional[str], score_is: Optional[str],
                     score_range: Sequence[float]) -> str:
    """Check the options that choose a score (a named ``score`` or a map ``score_field`` with
    its direction ``score_is`` and ``score_range``); return ``score_is`` (its default is
    'confidence' for a named score and 'uncertainty' for a field)."""
    if score_field is None:
        check_score_name(score)
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
        mn, mx = (v.item() for v in value_range(m))
        if not (math.isfinite(mn) and math.isfinite(mx)):
            bad = ~torch.isfinite(m)
            raise ValueError(f'{name} contains {int(bad.sum())} non-finite value(s)')
        if mn < lo or mx > hi:
            raise ValueError(f'{name} has values in [{mn:.4g}, {mx:.4g}], outside score_range=({lo:g}, '
                             f'{hi:g}); set score_range to the range of this score')
    x = (m - lo) / (hi - lo) if (lo, hi) != (0.0, 1.0) else m
    x = x.clamp(0, 1)  # only rounding of the affine map can leave [0, 1] here
    return 1 - x if score_is == 'uncertainty' else x


# ----------------------------------------------------------------------------------------------
# the scores of several members
# ----------------------------------------------------------------------------------------------
def member_score_confidence(score: str, raw: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A raw map of several members (:meth:`uqseg.core.member_statistics.MemberSummary.maps`)
    mapped onto a [0, 1] confidence, order-preserving: ``1 - x / log K`` for the mutual information
    and the expected entropy (nats, in ``[0, log K]``), ``1 - 4 x`` for the class variance (in
    ``[0, 1/4]``), ``1 - x`` for the disagreement; an averaged layer score as
    :func:`score_confidence` maps it."""
    if score in ('mutual-information', 'expected-entropy'):
        out = 1 - raw / math.log(num_classes) if num_classes > 1 else torch.ones_like(raw)
    elif score == 'class-variance':
        out = 1 - 4 * raw
    elif score == 'disagreement':
        out = 1 - raw
    else:
        return score_confidence(score, raw, num_classes)
    return out.clamp(0, 1)


def member_score_key(score: str, raw: torch.Tensor) -> torch.Tensor:
    """The float64 ranking key of a raw map of several members, higher = more confident: ``-log x``
    for the uncertainties (:data:`MEMBER_SCORES`, an averaged ``vacuity``; ``+inf`` where ``x = 0``,
    e.g. members that agree), ``x`` for the confidences (the averaged DisMax scores).

    The log keeps the order and the resolution of small values: the mutual information of members
    that nearly agree is often below 1e-3 nats, where a histogram of ``-x`` (bins 0.002 wide at 0,
    :func:`uqseg.core.accumulators.key_coordinate`) would put every pixel in one bin; on ``-log x``
    a bin is about 0.2% of ``x`` wide at any magnitude."""
    confident = not is_member_score(check_score_name(score)) and SCORE_TABLE[score].higher_is_confident
    x = raw.to(torch.float64)
    return x if confident else -torch.log(x.clamp_min(0))


def check_member_score(score: str, maps_available: Sequence[str], kinds: Sequence[str], source: str,
                       key: str = 'score') -> None:
    """Raise ``ValueError`` naming ``key`` and ``source`` when a prediction of ``kinds`` members
    (empty: one model) that carries the maps ``maps_available`` lacks ``score``: a member score of one
    model, or a layer score (``vacuity``, ``MMLES`` ...) of members of mixed kinds or of logits. The
    functions of ``p`` exist for every prediction (of the mean for several members)."""
    check_score_name(score, key)
    if score in maps_available or (not is_member_score(score) and PROBS in SCORE_TABLE[score].kinds):
        return
    if not kinds:
        if is_member_score(score):
            raise _needs_members(score, key, source)
        return
    if is_member_score(score):
        raise ValueError(f'{key}={score!r}: {source} ({len(kinds)} members) carries no {score!r} map; '
                         f'it carries {tuple(maps_available)}')
    need = ' or '.join(_kind_text(k) for k in SCORE_TABLE[score].kinds if k != PROBS)
    seen = ', '.join(f'{k} x{list(kinds).count(k)}' for k in dict.fromkeys(kinds))
    raise ValueError(f'{key}={score!r} is the mean over members of a score of {need}; it needs members that '
                     f'all output that kind, but the {len(kinds)} members of {source} output {seen}; '
                     f'its scores are {tuple(maps_available)} and the functions of the mean probability')
