"""The one reader of an mmseg prediction: every uqseg metric, hook and tool reads a sample here.

:func:`read_prediction` checks a sample (a ``SegDataSample`` or its ``to_dict()``) and returns a
:class:`DensePrediction` (probabilities, label, valid mask, image path); :func:`set_name_of`
gives its test set; :func:`score_map` a confidence map (built-in or a field of the sample);
:func:`field_tensor` any per-pixel field. Everything stays on the prediction's device.

A binary prediction (one channel; mmseg's ``postprocess_result`` has applied the sigmoid) is
kept as one foreground map (no stacked ``[1 - p, p]``), so each image costs a few linear passes
(see ``benchmarks/bench_calibration.py``). Conventions: ``docs/metrics.md#pixel-metrics-in-mmseg``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ...core.scores import (
    binary_normalised_entropy,
    check_score_name,
    confidence_from_score,
    normalised_entropy,
    raw_score,
    score_confidence,
)
from ..outputs import check_model_score

__all__ = ['DEFAULT_SET_NAME', 'DensePrediction', 'read_prediction', 'ignored_labels', 'raw_score_map', 'as_dict',
           'set_name_of', 'field_tensor', 'score_map']

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
    channels as the sample holds them (the named scores are functions of them).
    """

    def __init__(self, path: str, label: torch.Tensor, mask: Optional[torch.Tensor],
                 p: Optional[torch.Tensor] = None, probs: Optional[torch.Tensor] = None,
                 logits: Optional[torch.Tensor] = None) -> None:
        self.path, self.label, self.mask, self.p, self.probs = path, label, mask, p, probs
        self.logits = logits
        self._top: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self._label_f: Optional[torch.Tensor] = None

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
    def num_classes(self) -> int:
        return 2 if self.binary else self.probs.shape[0]

    @property
    def num_valid(self) -> int:
        return self.label.numel() if self.mask is None else int(self.mask.sum())

    def top_label(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(confidence, correct) maps of the top label: ``max_c p_c`` and ``argmax == label``.

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
                conf, pred = self.probs.max(dim=0)
                self._top = conf, pred == self.label
        return self._top

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
        return self.probs.argmax(dim=0)


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
        lo, hi = torch.aminmax(logits)  # NaN propagates into both
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
        lmin, lmax = (v.item() for v in torch.aminmax(label))
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
    if logits.shape[0] == 1:
        p = logits[0]
        if p.numel() and (lo.item() < 0 or hi.item() > 1):
            raise ValueError(f'{path}: binary seg_logits must be sigmoid probabilities in [0, 1], got range '
                             f'[{lo.item():.4g}, {hi.item():.4g}]')
        return DensePrediction(path, label, valid, p=p)
    return DensePrediction(path, label, valid, probs=logits.softmax(dim=0), logits=logits)


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


def raw_score_map(pred: DensePrediction, score: str) -> torch.Tensor:
    """The named score's map as its paper defines it (:func:`uqseg.core.scores.raw_score`), (H, W);
    a binary (one-channel sigmoid) head has ``max-prob`` / ``MPS`` (``max(p, 1 - p)``),
    ``entropy`` (``H / log 2``) and ``ES`` (``-H``), nothing else."""
    check_score_name(score)
    if score in ('max-prob', 'MPS'):
        return pred.top_label()[0]  # cached: the calibration metrics read it too
    if not pred.binary:
        return normalised_entropy(pred.probs, dim=0) if score == 'entropy' else raw_score(score, pred.logits, dim=0)
    if score in ('entropy', 'ES'):
        ent = binary_normalised_entropy(pred.p)
        return ent if score == 'entropy' else -ent * math.log(2)
    raise ValueError(f'{pred.path}: score={score!r} needs the channels of a softmax head, but seg_logits has '
                     'one (sigmoid) channel')


def score_map(pred: DensePrediction, sample: dict, score: str = 'max-prob', score_field: Optional[str] = None,
              score_is: str = 'uncertainty', score_range: tuple = (0.0, 1.0)) -> torch.Tensor:
    """Per-pixel confidence in [0, 1], higher = more confident, (H, W) on the prediction's device.

    * ``score_field=None``: the named ``score`` (:data:`uqseg.core.scores.SCORES`), a function of
      the head's channels: ``'max-prob'`` (= DisMax's ``'MPS'``) is ``max_c p_c`` (binary
      ``max(p, 1 - p)``), ``'entropy'`` (``'ES'``) is ``1 - H(p) / log C`` (C = 2 for a binary
      head); ``'vacuity'`` (EDL) and ``'MDS'`` / ``'MMLS'`` / ``'MMLES'`` (DisMax, IsoMax+) are
      mapped onto [0, 1] by :func:`uqseg.core.scores.score_confidence` and exist only for the
      model whose head announced that output (:func:`uqseg.seg.outputs.check_model_score`:
      otherwise a ``ValueError`` naming ``score``); ``'own'`` is the head's own score (EDL
      vacuity, DisMax MMLES, IsoMax+ MDS, max-prob for a plain head).
    * ``score_field='seg_uncertainty'`` (any field of the data sample holding a (1, H, W) or
      (H, W) tensor or PixelData): the map is mapped linearly from ``score_range = (lo, hi)``
      onto [0, 1] and, for ``score_is='uncertainty'`` (higher = less confident), flipped
      (``1 - x``). Values outside ``score_range`` or non-finite raise ``ValueError`` (ranking
      metrics only depend on the order, so any range that holds the values gives the same
      AUROC/AURC up to binning).
    """
    if score_field is None:
        score = check_model_score(score)
        if score in ('max-prob', 'MPS'):
            return pred.top_label()[0]
        conf = score_confidence(score, raw_score_map(pred, score), pred.num_classes)
        return conf.to(pred.p.dtype if pred.binary else pred.probs.dtype)
    m = field_tensor(sample, score_field, pred.path)
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    if m.shape != pred.label.shape:
        raise ValueError(f'{pred.path}: {score_field} has shape {tuple(m.shape)} but the ground truth has '
                         f'{tuple(pred.label.shape)}; expected (1, H, W) or (H, W)')
    return confidence_from_score(m, score_range, score_is, name=f'{pred.path}: {score_field}')
