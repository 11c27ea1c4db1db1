"""A model's own score for each kind of outputs: the one table of the output layers' ``default_score``.

An output layer names its own score (``default_score``: EDL ``vacuity``, DisMax ``MMLES``, a
plain head's or TEDL stage 1's ``max-prob``); a model-outputs file or a data sample carries it
(``score`` / metainfo ``default_score``). Where none is carried (a plain head, a file written
by other code) the kind's default stands: :data:`DEFAULT_SCORES`. IsoMax+ is the one layer whose
own score (``MDS``, its paper's) is not its kind's default, so it is always carried.
:func:`own_score_of` is the rule of ``score='own'`` / ``--confidence own`` for both.
"""
from __future__ import annotations

from typing import Optional

from .scores import INPUT_KINDS, PROBS, check_score_available

__all__ = ['DEFAULT_SCORES', 'MEMBER_OWN_SCORE', 'default_score', 'own_score_of']

#: The own score of outputs of each kind (:data:`uqseg.core.scores.INPUT_KINDS`) when the model
#: names none: probabilities and logits rank by max-prob, EDL's log alpha by vacuity, distance
#: logits by DisMax's MMLES.
DEFAULT_SCORES: dict[str, str] = {'logits': 'max-prob', 'log_alpha': 'vacuity', 'distance_logits': 'MMLES',
                                  PROBS: 'max-prob'}
#: The own score of a prediction of several members (an ensemble, MC-dropout passes, TTA views),
#: both front ends: their epistemic uncertainty (``docs/ensembles.md#scores-by-name-everywhere``).
MEMBER_OWN_SCORE = 'mutual-information'


def default_score(kind: str) -> str:
    """The own score of outputs of ``kind`` (:data:`DEFAULT_SCORES`); ``ValueError`` for an unknown kind."""
    if kind not in DEFAULT_SCORES:
        raise ValueError(f'unknown output kind {kind!r}; known: {INPUT_KINDS}')
    return DEFAULT_SCORES[kind]


def own_score_of(kind: str, score: Optional[str] = None, owner: str = 'the model') -> str:
    """The own score of outputs of ``kind``: ``score`` (the one the model or file carries, checked to
    exist for ``kind``, naming ``owner``) or, without one, :func:`default_score`."""
    if score is None:
        return default_score(kind)
    check_score_available(score, kind, 'default_score', owner)
    return score
