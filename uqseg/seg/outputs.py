"""What the model's output channels are, carried in each predicted data sample.

A decode head with a uqseg output layer (:class:`~uqseg.seg.models.heads.OutputLayerHead`) outputs
``logits`` (TEDL's stage 1), ``log_alpha`` (EDL) or ``distance_logits`` (DisMax, IsoMax+;
:data:`uqseg.core.scores.OUTPUT_KINDS`). Every sample its segmentor predicts carries that in its
metainfo, as the classification head does: ``output_kind``, ``output_source`` (who produced it, for
messages) and ``default_score`` (the head's own score), the keys of :mod:`uqseg.core.scores`. A
sample without them is a plain head's (``logits``, own score ``max-prob``). Metrics and hooks read
them from the sample (:func:`sample_output`), so they describe the model that produced that very
sample, whatever ran before in the process.

mmseg gives a decode head's ``predict`` the images' metainfo as copies and builds the samples
in the segmentor (``EncoderDecoder.predict`` -> ``postprocess_result``) from the head's tensor
alone, so the head cannot write into them. :func:`record_output` registers, once, a forward hook
on the segmentor that writes :func:`model_output` of the segmentor into the samples its
``predict`` returns; the head calls it on the segmentor that builds it. The hook is a module
function of the segmentor it is called with (it survives ``deepcopy``, pickling and model
wrappers), and it reads the head at every call (TEDL's stage changes the kind). mmseg's
``SegTTAModel`` returns one view's sample per image, so the merged samples keep it.

A prediction of several members (an ``EnsembleSegmentor``, ``MCDropoutEncoderDecoder``'s passes,
``MeanProbabilitySegTTAModel``'s views) is a probability mixture: kind ``logits`` (the log of the
mean probability), own score ``mutual-information``, and in its metainfo the number of members,
their kinds and the names of the member maps it carries (:data:`uqseg.core.scores.MEMBERS_KEY`,
``MEMBER_KINDS_KEY``, ``MEMBER_SCORES_KEY``), each map a field :func:`member_map_field` of the
sample. Such a segmentor says so itself: :func:`model_output` asks a model with a
``member_output()`` method, and :func:`record_output`'s hook leaves its samples alone.
"""
from __future__ import annotations

import sys
from typing import Any, NamedTuple, Optional, Sequence, Union

from mmengine.structures import BaseDataElement
from mmseg.models.segmentors import BaseSegmentor
from torch import nn

from ..core.default_scores import MEMBER_OWN_SCORE, default_score
from ..core.member_statistics import member_map_names
from ..core.scores import (
    MEMBER_KINDS_KEY,
    MEMBER_SCORES_KEY,
    MEMBERS_KEY,
    OUTPUT_KIND_KEY,
    OUTPUT_KINDS,
    OUTPUT_SOURCE_KEY,
    OWN_SCORE,
    OWN_SCORE_KEY,
    PROBS,
    check_member_score,
    check_score_args,
    check_score_available,
    check_score_name,
    is_member_score,
)
from ..engine.wrapped_model import unwrap_model

__all__ = ['OWN_SCORE', 'ModelOutput', 'PLAIN', 'MEMBER_OWN_SCORE', 'model_output', 'head_output', 'sample_output',
           'record_output', 'member_map_field', 'members_output',
           'segmentor_being_built', 'resolve_score',
           'score_names', 'resolve_scores', 'check_metric_score']


#: The own score of a prediction of several members.


class ModelOutput(NamedTuple):
    kind: str    # 'logits', 'log_alpha' or 'distance_logits'
    source: str  # who produced it, for messages, e.g. 'EDLLayer in OutputLayerFCNHead'
    score: str   # its own score: 'vacuity' (EDL), 'MMLES' (DisMax), 'MDS' (IsoMax+), 'max-prob' (plain)
    members: int = 0             # several members: their number (0: one model, or TTA views not yet seen)
    maps: tuple = ()             # several members: the names of the member maps the samples carry
    member_kinds: tuple = ()     # several members: their kinds (empty: one model)

    @property
    def several(self) -> bool:
        """Whether it is a prediction of several members (an ensemble, MC-dropout passes, TTA views)."""
        return bool(self.member_kinds)

    def metainfo(self) -> dict:
        """The sample metainfo that carries it."""
        meta = {OUTPUT_KIND_KEY: self.kind, OUTPUT_SOURCE_KEY: self.source, OWN_SCORE_KEY: self.score}
        if self.several:
            meta.update({MEMBERS_KEY: self.members, MEMBER_SCORES_KEY: list(self.maps),
                         MEMBER_KINDS_KEY: list(self.member_kinds)})
        return meta


PLAIN = ModelOutput('logits', 'a plain decode head', default_score('logits'))


def member_map_field(name: str) -> str:
    """The sample field of a member map: ``seg_`` + the score name with ``-`` as ``_``
    (``seg_mutual_information``, ``seg_vacuity``)."""
    return 'seg_' + name.replace('-', '_')


def members_output(source: str, kinds: Sequence[str], members: Optional[int] = None,
                   maps: Optional[Sequence[str]] = None) -> ModelOutput:
    """What a prediction of members of ``kinds`` is: kind ``logits`` (the log of the mean
    probability), own score ``MEMBER_OWN_SCORE``, its maps (default
    :func:`uqseg.core.member_statistics.member_map_names`)."""
    kinds = tuple(kinds)
    return ModelOutput('logits', source, MEMBER_OWN_SCORE, len(kinds) if members is None else members,
                       tuple(member_map_names(kinds) if maps is None else maps), kinds)


def _output_layer(model):
    model = unwrap_model(model)
    model = getattr(model, 'module', model)  # a TTA model's segmentor
    head = getattr(model, 'decode_head', None)
    layer = getattr(head, 'conv_seg', None)
    return head, layer if hasattr(layer, 'output_kind') else None


def model_output(model) -> ModelOutput:
    """What a segmentor's decode head outputs (for hooks and tools, which hold the model); a model
    of several members (with a ``member_output()`` method) says what it predicts itself."""
    inner = unwrap_model(model)
    if callable(getattr(inner, 'member_output', None)):
        return inner.member_output()
    return head_output(model)


def head_output(model) -> ModelOutput:
    """What a segmentor's decode head outputs, one forward's channels (for a segmentor of several
    passes, e.g. MC dropout, what each pass gives)."""
    head, layer = _output_layer(model)
    if layer is None:
        return PLAIN
    return ModelOutput(layer.output_kind, f'{type(layer).__name__} in {type(head).__name__}', layer.default_score)


def sample_output(sample: Union[dict, BaseDataElement], where: str = '') -> ModelOutput:
    """What produced a sample (a ``SegDataSample`` or its ``to_dict()``): its metainfo
    ``output_kind`` / ``output_source`` / ``default_score``, or :data:`PLAIN` without them. A kind
    or score that is not one raises ``ValueError`` naming ``where`` (the image) and the key."""
    if isinstance(sample, BaseDataElement):
        meta = sample.metainfo
    else:
        meta = dict(sample.get('metainfo', {}))
        meta.update({k: sample[k] for k in _KEYS if k in sample})
    kind = meta.get(OUTPUT_KIND_KEY)
    if kind is None:
        return PLAIN
    prefix = f'{where}: ' if where else ''
    if kind not in OUTPUT_KINDS:
        raise ValueError(f'{prefix}metainfo {OUTPUT_KIND_KEY}={kind!r} is not an output kind; known: '
                         f'{tuple(OUTPUT_KINDS)}')
    score = meta.get(OWN_SCORE_KEY)
    if score is None:
        raise ValueError(f'{prefix}metainfo {OUTPUT_KIND_KEY}={kind!r} comes without {OWN_SCORE_KEY}')
    source = str(meta.get(OUTPUT_SOURCE_KEY) or f'a head with {kind} outputs')
    kinds = tuple(meta.get(MEMBER_KINDS_KEY) or ())
    if not kinds:
        check_score_available(score, kind, f'{prefix}metainfo {OWN_SCORE_KEY}')
        return ModelOutput(kind, source, score)
    maps = tuple(check_score_name(m, f'{prefix}metainfo {MEMBER_SCORES_KEY}') for m in meta.get(MEMBER_SCORES_KEY)
                 or ())
    out = ModelOutput(kind, source, score, int(meta.get(MEMBERS_KEY) or len(kinds)), maps, kinds)
    _check_available(score, out, f'{prefix}metainfo {OWN_SCORE_KEY}')
    return out


_KEYS = (OUTPUT_KIND_KEY, OUTPUT_SOURCE_KEY, OWN_SCORE_KEY, MEMBERS_KEY, MEMBER_SCORES_KEY, MEMBER_KINDS_KEY)


def _check_available(score: str, out: ModelOutput, key: str) -> None:
    """The one check of a score against what produced a prediction: of several members, the maps
    they carry (:func:`uqseg.core.scores.check_member_score`); of one model, its kind."""
    if out.several or is_member_score(score):
        check_member_score(score, out.maps, out.member_kinds, out.source, key)
    else:
        check_score_available(score, out.kind, key, model=out.source)


def _write_output(segmentor: nn.Module, args: tuple, outputs: Any) -> None:
    """Forward hook: the samples ``predict`` returned get :func:`model_output` in their metainfo
    (``loss`` / ``tensor`` modes return a dict / tensors, which are left alone)."""
    if callable(getattr(segmentor, 'member_output', None)):
        return  # a segmentor of several members writes its samples itself
    if isinstance(outputs, (list, tuple)) and outputs and all(isinstance(s, BaseDataElement) for s in outputs):
        meta = model_output(segmentor).metainfo()
        for sample in outputs:
            sample.set_metainfo(meta)


def record_output(segmentor: nn.Module) -> nn.Module:
    """Make ``segmentor`` write what its decode head outputs into every sample it predicts (see
    the module docstring); once per segmentor, which is returned."""
    if not any(hook is _write_output for hook in segmentor._forward_hooks.values()):
        segmentor.register_forward_hook(_write_output)
    return segmentor


def segmentor_being_built() -> Optional[BaseSegmentor]:
    """The innermost mmseg segmentor whose ``__init__`` is on the call stack, i.e. the one
    building the caller (a decode head built by ``EncoderDecoder._init_decode_head``), or None
    (a head built on its own). mmseg hands a head no reference to its segmentor; this is how
    the head finds the segmentor whose samples must carry its output."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name.startswith(('__init__', '_init_')):
            owner = frame.f_locals.get('self')
            if isinstance(owner, BaseSegmentor):
                return owner
        frame = frame.f_back
    return None


def resolve_score(score: str, out: ModelOutput, key: str = 'score') -> str:
    """The score to compute for outputs ``out``: ``score``, or its own for ``'own'``; raise naming
    ``key`` if it has no such score."""
    if score == OWN_SCORE:
        return out.score
    _check_available(score, out, key)
    return score


def score_names(scores: Union[str, Sequence[str], None], key: str = 'scores') -> Optional[list[str]]:
    """A hook's ``scores`` argument (a name, names or None) checked against the known scores."""
    if scores is None:
        return None
    names = [scores] if isinstance(scores, str) else list(scores)
    return [s if s == OWN_SCORE else check_score_name(s, key) for s in names]


def resolve_scores(out: ModelOutput, scores: Optional[list[str]], key: str = 'scores') -> list[str]:
    """The scores a hook draws / writes for outputs ``out`` (a sample's or a model's): ``scores``
    checked against them (an error naming ``key`` for one they do not have), or, for None, their
    own score (none for a plain head's logits or probabilities; the mutual information of several
    members). ``'own'`` stands for the own score."""
    if scores is None:
        return [] if out.kind in ('logits', PROBS) and not out.several else [out.score]
    return list(dict.fromkeys(resolve_score(s, out, key) for s in scores))


def check_metric_score(score: str, score_field, score_is, score_range) -> str:
    """A metric's score options checked (:func:`uqseg.core.scores.check_score_args`, plus ``'own'``:
    the score of the head that produced the samples); returns ``score_is``."""
    return check_score_args('max-prob' if score == OWN_SCORE else score, score_field, score_is, score_range)
