"""The one reader of an mmseg prediction: every uqseg metric, hook and tool reads a sample here.

:func:`read_prediction` checks a sample (a ``SegDataSample`` or its ``to_dict()``) and returns a
:class:`DensePrediction` (probabilities, label, valid mask, image path, and what produced it:
:func:`uqseg.seg.outputs.sample_output`); :func:`set_name_of` gives its test set. A named score
(:data:`uqseg.core.scores.SCORE_TABLE`) is one call into the core per map: :func:`raw_score_map`
(its definition), :func:`score_map` (a [0, 1] confidence, or a field of the sample mapped onto
one) and :func:`score_key_map` (its ranking key, :func:`uqseg.core.confidence_keys.confidence_key`,
which the ranking metrics bin); :func:`field_tensor` reads any per-pixel field. Everything stays on
the prediction's device.

A prediction of several members (an ensemble, MC-dropout passes, TTA views;
:mod:`uqseg.seg.outputs`) carries its member maps (``seg_mutual_information``, ...): they are
read with it (:attr:`DensePrediction.member_maps`) and serve their names in the three calls (the
core's ``member_score_key`` / ``member_score_confidence``); a name it lacks is the core's
``check_member_score`` error.

A binary prediction (one channel; mmseg's ``postprocess_result`` has applied the sigmoid) is
kept as one foreground map (no stacked ``[1 - p, p]``), so each image costs a few linear passes
(see ``benchmarks/bench_calibration.py``). Conventions: ``docs/metrics.md#pixel-metrics-in-mmseg``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ...core.checks import value_range
from ...core.confidence_keys import binary_key, confidence_key, row_chunks
from ...core.scores import (
    PROBS,
    confidence_from_score,
    is_probability_score,
    member_score_confidence,
    member_score_key,
    raw_score,
    score_confidence,
)
from ..outputs import PLAIN, ModelOutput, member_map_field, resolve_score, resolve_scores, sample_output

__all__ = ['DEFAULT_SET_NAME', 'DensePrediction', 'read_prediction', 'ignored_labels', 'raw_score_map', 'as_dict',
           'set_name_of', 'field_tensor', 'score_map', 'score_key_map', 'ranking_map', 'sample_scores']

#: Set name of a sample whose metainfo has no ``set_name`` (metrics, hooks and tools alike).
DEFAULT_SET_NAME = 'all'


def as_dict(sample) -> dict:
    """A ``SegDataSample`` as the dict the Evaluator hands to metrics (a dict is returned as is)."""
    return sample.to_dict() if hasattr(sample, 'to_dict') else sample


def set_name_of(data_sample) -> str:
    """The test set a sample belongs to (``set_name`` packed by ``PackSegInputs.meta_keys``), or
    :data:`DEFAULT_SET_NAME`."""
    d = as_dict(data_sample)
    return str(d.get('set_name') or d.get('metainfo', {}).get('set_name') or DEFAULT_SET_NAME)


class DensePrediction:
    """One image's prediction, label and valid mask (all on the prediction's device).

    Binary heads (one channel; mmseg's ``postprocess_result`` has applied the sigmoid):
    ``p`` is the (H, W) foreground probability and ``probs`` is None. Multi-class heads:
    ``probs`` is the (C, H, W) softmax of the logits and ``p`` is None. ``mask`` is the bool map
    of valid (not ignored) pixels, or None when every pixel is valid (the common case, which
    then needs no masking pass); :attr:`valid` always gives a map. ``logits`` are the head's
    channels as the sample holds them (the named scores are functions of them), ``output`` what
    they are (the sample's metainfo, :func:`uqseg.seg.outputs.sample_output`). ``member_maps``:
    the raw (H, W) maps a prediction of several members carries, by score name (empty for one model).
    """

    def __init__(self, path: str, label: torch.Tensor, mask: Optional[torch.Tensor],
                 p: Optional[torch.Tensor] = None, probs: Optional[torch.Tensor] = None,
                 logits: Optional[torch.Tensor] = None, output: ModelOutput = PLAIN,
                 member_maps: Optional[dict] = None) -> None:
        self.path, self.label, self.mask, self.p, self._probs = path, label, mask, p, probs
        self.logits, self.output = logits, output
        self.member_maps: dict[str, torch.Tensor] = dict(member_maps or {})
        self._top: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self._correct: Optional[torch.Tensor] = None
        self._label_f: Optional[torch.Tensor] = None
        self._pair: Optional[torch.Tensor] = None

    def label_float(self) -> torch.Tensor:
        """The label map in the prediction's float dtype (binary heads; cached)."""
        if self._label_f is None:
            self._label_f = self.label.to(self.p.dtype if self.binary else self.probs.dtype)
        return self._label_f

    @property
    def valid(self) -> torch.Tensor:
        if self.mask is None:
            self.mask = torch.ones(self.label.shape, dtype=torch.bool, device=self.label.device)
        return self.mask

    @property
    def binary(self) -> bool:
        return self.p is not None

    @property
    def probs(self) -> Optional[torch.Tensor]:
        """The (C, H, W) softmax of the logits, computed at the first use (the ranking metrics
        read keys of the logits and need none); None for a binary head."""
        if self._probs is None and self.logits is not None:
            self._probs = self.logits.softmax(dim=0)
        return self._probs

    @property
    def num_classes(self) -> int:
        return 2 if self.binary else (self.logits if self._probs is None else self._probs).shape[0]

    @property
    def num_valid(self) -> int:
        return self.label.numel() if self.mask is None else int(self.mask.sum())

    def top_label(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(confidence, correct) maps of the top label: ``p`` of the predicted class (``argmax`` of
        the logits, the first of tied maxima, as mmseg's ``pred_sem_seg``) and ``prediction == label``.

        Binary: ``max(p, 1 - p)`` and the prediction ``p > 1 - p`` (i.e. ``p > 0.5``; a tie
        goes to background, as ``argmax`` of ``[1 - p, p]``); ``correct`` is then a 0/1 float
        map (float ops are faster than bool ones on CPU), for multi-class heads a bool map. Its
        value at ignored pixels is meaningless: always combine with ``mask`` / ``valid``.
        """
        if self._top is None:
            if self.binary:
                q = 1 - self.p
                pred = torch.sub(self.p, q).sign_().clamp_(min=0)  # 1.0 where p > q
                self._top = torch.maximum(self.p, q), pred.sub_(self.label_float()).abs_().neg_().add_(1)
            else:
                pred = self.prediction()
                self._top = self.probs.gather(0, pred[None])[0], self.correct()
        return self._top

    def correct(self) -> torch.Tensor:
        """The ``correct`` map of :meth:`top_label` alone (cached; a multi-class head's needs no
        softmax): ``prediction == label``."""
        if self._correct is None:
            self._correct = self.top_label()[1] if self.binary else self.prediction() == self.label
        return self._correct

    @property
    def input_kind(self) -> str:
        """The kind of outputs the scores are computed from: ``'probs'`` for a one-channel
        (sigmoid) head, else the head's output kind."""
        return PROBS if self.binary else self.output.kind

    @property
    def source(self) -> str:
        """Who produced the outputs, for messages."""
        return 'the one-channel (sigmoid) head' if self.binary else self.output.source

    def score_inputs(self, score: str, keys: bool = False) -> tuple[torch.Tensor, str]:
        """``(z, kind)`` to compute ``score`` from, classes on dim 0: a binary head's ``[1 - p, p]``
        (probabilities); else the softmax ``probs`` for a function of ``p`` (cached, the same the
        calibration metrics read) or the head's channels (for the layer scores, and for every
        ranking key, which is resolved from the channels where ``p`` saturates)."""
        if self.binary:
            if self._pair is None:
                self._pair = torch.stack([1 - self.p, self.p])
            return self._pair, PROBS
        if is_probability_score(score) and not keys:
            return self.probs, PROBS
        return self.logits, self.output.kind

    def foreground(self) -> Optional[torch.Tensor]:
        """The foreground probability: ``p`` of a one-channel head, ``p_1`` of a two-class softmax
        head (e.g. EDL or DisMax on SOD), None for more classes."""
        if self.binary:
            return self.p
        return self.probs[1] if self.num_classes == 2 else None

    def saliency_map(self) -> torch.Tensor:
        """The prediction as SOD methods publish it: uint8 ``round(255 p)`` of the foreground
        probability (one-channel and two-class heads), or the class index map as uint8 (more
        classes)."""
        fg = self.foreground()
        if fg is not None:
            return (fg * 255).round().to(torch.uint8)
        return self.prediction().to(torch.uint8)

    def prediction(self) -> torch.Tensor:
        """The top-label prediction (H, W) as class indices (bool for binary)."""
        if self.binary:
            return self.p > 1 - self.p
        # the logits' argmax, as mmseg's pred_sem_seg: a float32 softmax can round two different top
        # logits to one probability and move argmax to the other class
        return self.logits.argmax(dim=0)


def _first_bad(x: torch.Tensor, bad: torch.Tensor) -> str:
    return f'{x[bad][0].item()}'


def ignored_labels(ignore_index) -> tuple[int, ...]:
    """``ignore_index`` (an int or a sequence of ints, e.g. ``(255, 254)`` to leave out the OOD
    pixels of the shapes demo too) as a tuple."""
    if isinstance(ignore_index, int) and not isinstance(ignore_index, bool):
        values = (ignore_index,)
    elif isinstance(ignore_index, (tuple, list)):
        values = tuple(ignore_index)
    else:
        raise ValueError(f'ignore_index must be an int or a sequence of ints, got {ignore_index!r}')
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f'ignore_index must be an int or a sequence of ints, got {ignore_index!r}')
    return values


def read_prediction(sample, ignore_index=255, require_label: bool = True, use_label: bool = True) -> DensePrediction:
    """Read and check ``seg_logits`` / ``gt_sem_seg`` of one mmseg sample (``SegDataSample`` or dict).

    ``ignore_index``: the label of pixels left out everywhere, or several (see
    :func:`ignored_labels`). ``require_label=False`` reads a sample without ``gt_sem_seg``
    (testing without annotations) as if every pixel were ignored; ``use_label=False`` reads it so
    whatever its ``gt_sem_seg`` (a prediction writer, which needs no label).

    Raises ``ValueError`` naming the image for: seg_logits not (C, H, W), prediction and label of
    different sizes, NaN/Inf in seg_logits, binary probabilities outside [0, 1], labels outside
    ``0..C-1`` that are not ``ignore_index``.
    """
    ignore = ignored_labels(ignore_index)
    sample = as_dict(sample)
    path = sample.get('img_path') or sample.get('metainfo', {}).get('img_path') or '<unknown image>'
    logits = sample['seg_logits']['data']
    if use_label and ('gt_sem_seg' in sample or require_label):
        label = sample['gt_sem_seg']['data']
    else:
        label = torch.full(logits.shape[1:], ignore[0], dtype=torch.long, device=logits.device)
    if logits.dim() != 3:
        raise ValueError(f'{path}: seg_logits must be (C, H, W), got shape {tuple(logits.shape)}')
    label = label.squeeze(0) if label.dim() == 3 else label
    if label.shape != logits.shape[1:]:
        raise ValueError(f'{path}: prediction of size {tuple(logits.shape[1:])} but ground truth of size '
                         f'{tuple(label.shape)}')
    if not logits.is_floating_point():
        raise ValueError(f'{path}: seg_logits must be floating point, got dtype {logits.dtype}')
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if logits.numel():
        lo, hi = value_range(logits)  # NaN propagates into both
        if not (math.isfinite(lo.item()) and math.isfinite(hi.item())):
            bad = ~torch.isfinite(logits)
            raise ValueError(f'{path}: seg_logits contain {int(bad.sum())} non-finite value(s) '
                             f'(e.g. {_first_bad(logits, bad)}). The model computed them: most likely '
                             'the checkpoint holds NaN/Inf weights (a run that diverged; '
                             'CheckFiniteLossHook stops training at the first non-finite loss), or the '
                             'input image is broken')
    c = max(2, logits.shape[0])
    valid = None  # every pixel valid
    if label.numel():
        lmin, lmax = (v.item() for v in value_range(label))
        hit = [v for v in ignore if lmin <= v <= lmax]
        if hit:  # there may be ignored pixels
            valid = label != hit[0]
            for v in hit[1:]:
                valid &= label != v
        if lmin < 0 or lmax >= c:  # labels out of range, unless all of them are ignored
            valid = torch.ones_like(label, dtype=torch.bool) if valid is None else valid
            bad = valid & ((label < 0) | (label >= c))
            if bool(bad.any()):
                mask = sample.get('seg_map_path') or sample.get('metainfo', {}).get('seg_map_path')
                raise ValueError(f'{path}: ground truth has label {label[bad][0].item()} outside 0..{c - 1} '
                                 f'and not ignore_index={ignore_index!r}'
                                 + (f' (mask file {mask})' if mask else '')
                                 + f'; the model has {logits.shape[0]} output channel(s)')
    if label.dtype != torch.long:
        label = label.long()
    output = sample_output(sample, path)
    maps = _member_maps(sample, output, path, label.shape)
    if logits.shape[0] == 1:
        p = logits[0]
        if p.numel() and (lo.item() < 0 or hi.item() > 1):
            raise ValueError(f'{path}: binary seg_logits must be sigmoid probabilities in [0, 1], got range '
                             f'[{lo.item():.4g}, {hi.item():.4g}]')
        return DensePrediction(path, label, valid, p=p, output=output, member_maps=maps)
    return DensePrediction(path, label, valid, logits=logits, output=output, member_maps=maps)


def _member_maps(sample: dict, output: ModelOutput, path: str, shape) -> dict:
    """The member maps the sample's metainfo names, each (H, W) (from a (1, H, W) field)."""
    maps = {}
    for name in output.maps:
        field = member_map_field(name)
        m = field_tensor(sample, field, path)
        m = m[0] if m.dim() == 3 and m.shape[0] == 1 else m
        if m.shape != shape:
            raise ValueError(f'{path}: member map {field} has shape {tuple(m.shape)} but the ground truth has '
                             f'{tuple(shape)}')
        maps[name] = m
    return maps


# ----------------------------------------------------------------------------------------------
# confidence / uncertainty scores
# ----------------------------------------------------------------------------------------------
def field_tensor(sample: dict, field: str, path: str) -> torch.Tensor:
    """The tensor of a per-pixel field of a sample dict (PixelData, dict with ``data`` or tensor);
    errors name the image ``path`` and the fields the sample has."""
    if field in sample:
        v = sample[field]
    elif field in sample.get('metainfo', {}):
        v = sample['metainfo'][field]
    else:
        keys = sorted(k for k in sample if not k.startswith('_'))
        raise KeyError(f'{path}: the data sample has no field {field!r} to read the uncertainty map from '
                       f'(fields: {keys})')
    if isinstance(v, dict):
        if 'data' not in v:
            raise ValueError(f'{path}: field {field!r} is a dict without "data" (expected a PixelData)')
        v = v['data']
    elif hasattr(v, 'data') and isinstance(v.data, torch.Tensor):
        v = v.data
    if not isinstance(v, torch.Tensor):
        raise ValueError(f'{path}: field {field!r} must be a tensor or PixelData, got {type(v).__name__}')
    return v


def _outputs(pred: DensePrediction) -> ModelOutput:
    """What the scores of ``pred`` are computed from (a binary head's: probabilities)."""
    return pred.output._replace(kind=pred.input_kind, source=pred.source)


def _score_name(pred: DensePrediction, score: str, key: str) -> str:
    """``score`` (``'own'``: the head's own) checked against what produced ``pred``; the error
    names the image and ``key``."""
    return resolve_score(score, _outputs(pred), f'{pred.path}: {key}')


def sample_scores(pred: DensePrediction, scores: Optional[list[str]], key: str = 'scores') -> list[str]:
    """The named scores a hook draws / writes for ``pred`` (:func:`uqseg.seg.outputs.resolve_scores`
    against the sample's own outputs): ``scores`` checked, or for None the head's own score
    (none for a plain head)."""
    return resolve_scores(_outputs(pred), scores, f'{pred.path}: {key}')


def raw_score_map(pred: DensePrediction, score: str, key: str = 'score') -> torch.Tensor:
    """The named score's map as its paper defines it (:func:`uqseg.core.scores.raw_score`), (H, W);
    ``'own'`` is the head's own score. A score the head that produced ``pred`` does not have is a
    ``ValueError`` naming the image and ``key``; a one-channel (sigmoid) head's outputs are the
    probabilities ``[1 - p, p]``, which have the scores of ``p`` (max-prob, entropy, margin, MPS, ES)."""
    name = _score_name(pred, score, key)
    if name in pred.member_maps:
        return pred.member_maps[name]
    if name in ('max-prob', 'MPS'):
        return pred.top_label()[0]  # cached: the calibration metrics and score_map read the same map
    z, kind = pred.score_inputs(name)
    return raw_score(name, z, 0, kind)


def score_key_map(pred: DensePrediction, score: str, key: str = 'score') -> torch.Tensor:
    """The named score's ranking key (:func:`uqseg.core.confidence_keys.confidence_key`), (H, W)
    float64, higher = more confident, in the order of its confidence and resolved where that
    saturates; checked as :func:`raw_score_map`. Computed in chunks of
    :func:`uqseg.core.confidence_keys.row_chunks` (a binary head's max-prob:
    :func:`uqseg.core.confidence_keys.binary_key` of ``p``, one pass)."""
    name = _score_name(pred, score, key)
    if name in pred.member_maps:
        return member_score_key(name, pred.member_maps[name])
    if pred.binary and name in ('max-prob', 'MPS'):
        return binary_key(pred.p)
    z, kind = pred.score_inputs(name, keys=True)
    c = z.shape[0]
    rows = z.reshape(c, -1)
    out = torch.empty(rows.shape[1], dtype=torch.float64, device=z.device)
    for sl in row_chunks(rows.shape[1], c):
        chunk = rows[:, sl].t().contiguous()
        out[sl] = confidence_key(name, chunk, kind, dim=1, exact=False)  # binned: ~1e-6 is enough
    return out.reshape(z.shape[1:])


def score_map(pred: DensePrediction, sample: dict, score: str = 'max-prob', score_field: Optional[str] = None,
              score_is: str = 'uncertainty', score_range: tuple = (0.0, 1.0)) -> torch.Tensor:
    """Per-pixel confidence in [0, 1], higher = more confident, (H, W) on the prediction's device.

    * ``score_field=None``: the named ``score`` (:data:`uqseg.core.scores.SCORES`, or ``'own'``:
      the head's own score, EDL vacuity, DisMax MMLES, IsoMax+ MDS, max-prob for a plain head),
      :func:`raw_score_map` mapped onto [0, 1] by :func:`uqseg.core.scores.score_confidence`:
      ``'max-prob'`` (= DisMax's ``'MPS'``) is ``max_c p_c`` (binary ``max(p, 1 - p)``),
      ``'entropy'`` is ``1 - H(p) / log C`` (C = 2 for a binary head), ``'vacuity'`` ``1 - u``,
      ... A score the head that produced the sample does not have is a ``ValueError`` naming it.
    * ``score_field='seg_uncertainty'`` (any field of the data sample holding a (1, H, W) or
      (H, W) tensor or PixelData): the map is mapped linearly from ``score_range = (lo, hi)``
      onto [0, 1] and, for ``score_is='uncertainty'`` (higher = less confident), flipped
      (``1 - x``). Values outside ``score_range`` or non-finite raise ``ValueError`` (ranking
      metrics only depend on the order, so any range that holds the values gives the same
      AUROC/AURC up to binning).
    """
    if score_field is None:
        name = _score_name(pred, score, 'score')
        if name in ('max-prob', 'MPS'):
            return pred.top_label()[0]  # cached: the calibration metrics read it too
        conf = member_score_confidence(name, pred.member_maps[name], pred.num_classes) \
            if name in pred.member_maps else score_confidence(name, raw_score_map(pred, name), pred.num_classes)
        return conf.to(pred.p.dtype if pred.binary else pred.probs.dtype)
    m = field_tensor(sample, score_field, pred.path)
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    if m.shape != pred.label.shape:
        raise ValueError(f'{pred.path}: {score_field} has shape {tuple(m.shape)} but the ground truth has '
                         f'{tuple(pred.label.shape)}; expected (1, H, W) or (H, W)')
    return confidence_from_score(m, score_range, score_is, name=f'{pred.path}: {score_field}')


def ranking_map(pred: DensePrediction, sample: dict, score: str = 'max-prob', score_field: Optional[str] = None,
                score_is: str = 'uncertainty', score_range: tuple = (0.0, 1.0)) -> torch.Tensor:
    """What the ranking metrics rank pixels by, higher = more confident: a named score's key
    (:func:`score_key_map`; bin it with ``ConfidenceHistogram(coordinate='key')``), or a field's
    [0, 1] confidence (:func:`score_map`; ``coordinate='confidence'``)."""
    if score_field is None:
        return score_key_map(pred, score)
    return score_map(pred, sample, score, score_field, score_is, score_range)
