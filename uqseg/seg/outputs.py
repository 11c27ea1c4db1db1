"""What the model's output channels are, told by the head to the metrics and hooks that read them.

A decode head with a uqseg output layer (:class:`~uqseg.seg.models.heads.OutputLayerHead`)
announces, at every ``predict``, its layer and output kind (``logits``, ``log_alpha``,
``distance_logits``; :data:`uqseg.core.scores.OUTPUT_KINDS`) in mmengine's ``MessageHub`` (the
runner's runtime information, not saved in checkpoints). The metrics read it to check that a
score they are asked for (``score='vacuity'``) exists for the model that produced the samples;
without an announcement the head is a plain one (``logits``). mmseg's ``postprocess_result``
builds the data samples from the head's tensor alone, so the samples cannot carry it.

The announcement is the latest one in the current MessageHub: two runners built in the same
second from the same config share one hub (mmengine names it after both), so a plain model
evaluated after an announcing one in such a hub would read the old kind. Hooks and tools, which
hold the model, read it from the model instead (:func:`model_output`).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

from mmengine.logging import MessageHub

from ..core.scores import check_score_args, check_score_available, check_score_name
from ..engine.wrapped_model import unwrap_model

__all__ = ['OUTPUT_INFO_KEY', 'OWN_SCORE', 'ModelOutput', 'announce_output', 'announced_output', 'check_model_score',
           'model_output', 'score_names', 'resolve_scores', 'check_metric_score']

#: Runtime-information key of the announcement.
OUTPUT_INFO_KEY = 'uqseg/output'


#: The score name that stands for the model's own score (``score='own'`` in a metric).
OWN_SCORE = 'own'


class ModelOutput(NamedTuple):
    kind: str    # 'logits', 'log_alpha' or 'distance_logits'
    source: str  # who produced it, for messages, e.g. 'EDLLayer in OutputLayerFCNHead'
    score: str   # its own score: 'vacuity' (EDL), 'MMLES' (DisMax), 'MDS' (IsoMax+), 'max-prob' (plain)


PLAIN = ModelOutput('logits', 'a plain decode head', 'max-prob')


def announce_output(kind: str, source: str, score: str) -> None:
    MessageHub.get_current_instance().update_info(OUTPUT_INFO_KEY, ModelOutput(kind, source, score), resumed=False)


def announced_output() -> ModelOutput:
    """The latest announcement in the current MessageHub, or a plain head's."""
    return MessageHub.get_current_instance().get_info(OUTPUT_INFO_KEY, PLAIN)


def check_model_score(score: str, key: str = 'score') -> str:
    """The score to compute for the model that produced the current samples: ``score``, or its own
    for ``'own'``; raise naming ``key`` if the model has no such score."""
    out = announced_output()
    if score == OWN_SCORE:
        return out.score
    check_score_available(score, out.kind, key, model=out.source)
    return score


def _output_layer(model):
    model = unwrap_model(model)
    model = getattr(model, 'module', model)  # a TTA model's segmentor
    head = getattr(model, 'decode_head', None)
    layer = getattr(head, 'conv_seg', None)
    return head, layer if hasattr(layer, 'output_kind') else None


def model_output(model) -> ModelOutput:
    """What a segmentor's decode head outputs (for hooks and tools, which hold the model)."""
    head, layer = _output_layer(model)
    if layer is None:
        return PLAIN
    return ModelOutput(layer.output_kind, f'{type(layer).__name__} in {type(head).__name__}', layer.default_score)


def score_names(scores: Union[str, Sequence[str], None], key: str = 'scores') -> Optional[list[str]]:
    """A hook's ``scores`` argument (a name, names or None) checked against the known scores."""
    if scores is None:
        return None
    names = [scores] if isinstance(scores, str) else list(scores)
    return [s if s == OWN_SCORE else check_score_name(s, key) for s in names]


def resolve_scores(model, scores: Optional[list[str]], key: str = 'scores') -> list[str]:
    """The scores a hook draws / writes for ``model``: ``scores`` checked against its head (an
    error naming ``key`` for one it does not have), or, for None, the head's own score (none for
    a plain head). ``'own'`` stands for the head's own score."""
    out = model_output(model)
    if scores is None:
        return [] if out.kind == 'logits' else [out.score]
    for s in scores:
        if s != OWN_SCORE:
            check_score_available(s, out.kind, key, model=out.source)
    return list(dict.fromkeys(out.score if s == OWN_SCORE else s for s in scores))


def check_metric_score(score: str, score_field, score_is, score_range) -> str:
    """A metric's score options checked (:func:`uqseg.core.scores.check_score_args`, plus ``'own'``:
    the score of the head that produced the samples); returns ``score_is``."""
    return check_score_args('max-prob' if score == OWN_SCORE else score, score_field, score_is, score_range)
