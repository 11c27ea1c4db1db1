"""Fast per-image reading of mmseg predictions for the pixel-level uncertainty metrics.

Everything here runs on the prediction's device and returns either pixel maps (for the caller to
reduce) or small per-bin sums; nothing of pixel size is moved to the host.

A binary prediction is kept as one foreground map (no stacked ``[1 - p, p]``), and ignored
pixels are sent to an extra, discarded histogram bin instead of being gathered out, so each image
costs a few linear passes (see ``benchmarks/bench_calibration.py``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..binning import fast_bin_index

__all__ = ['DensePrediction', 'read_prediction', 'set_name_of', 'masked_bin_sums', 'masked_histogram', 'score_map',
           'BUILTIN_SCORES']

#: Built-in confidence scores, higher = more confident, all in [0, 1].
BUILTIN_SCORES = ('max-prob', 'entropy')


def set_name_of(data_sample: dict, default: str = 'all') -> str:
    """The test set a sample belongs to (``set_name`` packed by ``PackSegInputs.meta_keys``)."""
    return str(data_sample.get('set_name') or data_sample.get('metainfo', {}).get('set_name') or default)


class DensePrediction:
    """One image's prediction, label and valid mask (all on the prediction's device).

    Binary heads (one channel; mmseg's ``postprocess_result`` has applied the sigmoid):
    ``p`` is the (H, W) foreground probability and ``probs`` is None. Multi-class heads:
    ``probs`` is the (C, H, W) softmax of the logits and ``p`` is None. ``mask`` is the bool map
    of valid (not ignored) pixels, or None when every pixel is valid (the common case, which
    then needs no masking pass); :attr:`valid` always gives a map.
    """

    def __init__(self, path: str, label: torch.Tensor, mask: Optional[torch.Tensor],
                 p: Optional[torch.Tensor] = None, probs: Optional[torch.Tensor] = None) -> None:
        self.path, self.label, self.mask, self.p, self.probs = path, label, mask, p, probs
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

    def prediction(self) -> torch.Tensor:
        """The top-label prediction (H, W) as class indices (bool for binary)."""
        if self.binary:
            return self.p > 1 - self.p
        return self.probs.argmax(dim=0)


def _first_bad(x: torch.Tensor, bad: torch.Tensor) -> str:
    return f'{x[bad][0].item()}'


def read_prediction(sample: dict, ignore_index: int = 255) -> DensePrediction:
    """Read and check ``seg_logits`` / ``gt_sem_seg`` of one mmseg sample (a ``SegDataSample`` dict).

    Raises ``ValueError`` naming the image for: seg_logits not (C, H, W), prediction and label of
    different sizes, NaN/Inf in seg_logits, binary probabilities outside [0, 1], labels outside
    ``0..C-1`` that are not ``ignore_index``.
    """
    path = sample.get('img_path') or sample.get('metainfo', {}).get('img_path') or '<unknown image>'
    logits = sample['seg_logits']['data']
    label = sample['gt_sem_seg']['data']
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
                             f'(e.g. {_first_bad(logits, bad)})')
    c = max(2, logits.shape[0])
    valid = None  # every pixel valid
    if label.numel():
        lmin, lmax = (v.item() for v in torch.aminmax(label))
        if lmin <= ignore_index <= lmax:  # there may be ignored pixels
            valid = label != ignore_index
        if lmin < 0 or lmax >= c:  # labels out of range, unless all of them are ignore_index
            valid = label != ignore_index if valid is None else valid
            bad = valid & ((label < 0) | (label >= c))
            if bool(bad.any()):
                raise ValueError(f'{path}: ground truth has label {label[bad][0].item()} outside 0..{c - 1} '
                                 f'and not ignore_index={ignore_index}')
    if label.dtype != torch.long:
        label = label.long()
    if logits.shape[0] == 1:
        p = logits[0]
        if p.numel() and (lo.item() < 0 or hi.item() > 1):
            raise ValueError(f'{path}: binary seg_logits must be sigmoid probabilities in [0, 1], got range '
                             f'[{lo.item():.4g}, {hi.item():.4g}]')
        return DensePrediction(path, label, valid, p=p)
    return DensePrediction(path, label, valid, probs=logits.softmax(dim=0))


# ----------------------------------------------------------------------------------------------
# binning
# ----------------------------------------------------------------------------------------------
def _keys(conf: torch.Tensor, n_bins: int, split: Optional[torch.Tensor], valid: Optional[torch.Tensor]
          ) -> tuple[torch.Tensor, int]:
    """Flat int32 keys per pixel and the number of keys: ``(key, n_keys)``.

    Without ``split`` the key is the bin; with a 0/1 ``split`` map it is ``2 * bin + split``.
    Ignored pixels (``valid`` False) get the extra key ``n_keys - 1``, dropped by the callers.
    The keys are built in int32 (the conversions from float and the label's int64 are cheap on
    CPU, unlike int64 arithmetic), which ``bincount`` takes as they are.
    """
    key = fast_bin_index(conf.reshape(-1), n_bins, torch.int32)
    if split is not None:
        key.mul_(2).add_(split.reshape(-1).to(torch.int32))
    n_keys = (1 if split is None else 2) * n_bins + 1
    if valid is not None:
        key.masked_fill_(~valid.reshape(-1), n_keys - 1)
    return key, n_keys


def masked_bin_sums(conf: torch.Tensor, correct: torch.Tensor, valid: Optional[torch.Tensor],
                    n_bins: int, hard: Optional[bool] = None) -> torch.Tensor:
    """Per-bin ``[count, sum conf, sum correct]`` (3, n_bins) float64 over the ``valid`` pixels.

    Equals ``binning.bin_sums(conf[valid], correct[valid], n_bins)`` (``valid=None``: all
    pixels). ``correct`` is 0/1 on valid pixels (``hard=True``: correctness, or the label for
    positive-class calibration; one key per (bin, correct) pixel, two bincounts; any value at
    ignored pixels) or soft, any value in [0, 1] (``hard=False``, three bincounts).
    ``hard=None`` infers it (bool and integer tensors are hard; a float tensor is hard if all its
    values are 0 or 1). Ignored pixels go to an extra, dropped key, so nothing is gathered.
    """
    correct = correct.reshape(-1)
    if conf.numel() != correct.numel():
        raise ValueError(f'conf has {conf.numel()} values but correct has {correct.numel()}')
    out = torch.empty(3, n_bins, dtype=torch.float64, device=conf.device)
    w = conf.reshape(-1).to(torch.float64)  # bincount weights: per-image sums in float64
    if hard is None:
        hard = (correct.dtype == torch.bool or not correct.is_floating_point()
                or bool(((correct == 0) | (correct == 1)).all()))
    if hard:
        key, m = _keys(conf, n_bins, correct, valid)
        pair = torch.bincount(key, minlength=m)[:2 * n_bins].view(n_bins, 2).to(torch.float64)
        out[0] = pair.sum(1)
        out[2] = pair[:, 1]
        out[1] = torch.bincount(key, weights=w, minlength=m)[:2 * n_bins].view(n_bins, 2).sum(1)
    else:
        key, m = _keys(conf, n_bins, None, valid)
        out[0] = torch.bincount(key, minlength=m)[:n_bins].to(torch.float64)
        out[2] = torch.bincount(key, weights=correct.to(torch.float64), minlength=m)[:n_bins]
        out[1] = torch.bincount(key, weights=w, minlength=m)[:n_bins]
    return out


def masked_histogram(conf: torch.Tensor, valid: Optional[torch.Tensor], n_bins: int,
                     split: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Counts of ``conf`` over the valid pixels in the bins of :mod:`..binning`, float64.

    Without ``split``: shape (n_bins,). With a bool or 0/1 ``split`` map: shape (2, n_bins),
    row 0 the pixels where ``split`` is 1 (e.g. correct) and row 1 the others (the layout of
    :class:`uqseg.evaluation.accumulators.ConfidenceHistogram`).
    """
    key, m = _keys(conf, n_bins, split, valid)
    if split is None:
        return torch.bincount(key, minlength=m)[:n_bins].to(torch.float64)
    pair = torch.bincount(key, minlength=m)[:2 * n_bins].view(n_bins, 2)
    return pair.t().flip(0).to(torch.float64)  # row 0: split 1, row 1: split 0


# ----------------------------------------------------------------------------------------------
# confidence / uncertainty scores
# ----------------------------------------------------------------------------------------------
def _field_tensor(sample: dict, field: str, path: str) -> torch.Tensor:
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
    elif hasattr(v, 'data') and isinstance(getattr(v, 'data'), torch.Tensor):
        v = v.data
    if not isinstance(v, torch.Tensor):
        raise ValueError(f'{path}: field {field!r} must be a tensor or PixelData, got {type(v).__name__}')
    return v


def score_map(pred: DensePrediction, sample: dict, score: str = 'max-prob', score_field: Optional[str] = None,
              score_is: str = 'uncertainty', score_range: tuple = (0.0, 1.0)) -> torch.Tensor:
    """Per-pixel confidence in [0, 1], higher = more confident, (H, W) on the prediction's device.

    * ``score_field=None``: ``score='max-prob'`` is the top-label probability ``max_c p_c``
      (binary ``max(p, 1 - p)``); ``score='entropy'`` is ``1 - H(p) / log C`` (C = 2 for a binary
      head).
    * ``score_field='seg_uncertainty'`` (any field of the data sample holding a (1, H, W) or
      (H, W) tensor or PixelData, e.g. EDL's uncertainty ``u`` or a DisMax score): the map is
      mapped linearly from ``score_range = (lo, hi)`` onto [0, 1] and, for
      ``score_is='uncertainty'`` (higher = less confident), flipped (``1 - x``). Values outside
      ``score_range`` or non-finite raise ``ValueError`` (ranking metrics only depend on the
      order, so any range that holds the values gives the same AUROC/AURC up to binning).
    """
    if score_field is None:
        if score == 'max-prob':
            return pred.top_label()[0]
        if score == 'entropy':
            if pred.binary:
                p = pred.p.double()
                ent = -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)) / math.log(2)
            else:
                pr = pred.probs.double()
                ent = -torch.special.xlogy(pr, pr).sum(0) / math.log(pred.num_classes)
            return (1 - ent).clamp_(0, 1).to(pred.p.dtype if pred.binary else pred.probs.dtype)
        raise ValueError(f'score must be one of {BUILTIN_SCORES}, got {score!r}')
    m = _field_tensor(sample, score_field, pred.path)
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    if m.shape != pred.label.shape:
        raise ValueError(f'{pred.path}: {score_field} has shape {tuple(m.shape)} but the ground truth has '
                         f'{tuple(pred.label.shape)}; expected (1, H, W) or (H, W)')
    if not m.is_floating_point():
        m = m.float()
    elif m.dtype in (torch.float16, torch.bfloat16):
        m = m.float()
    lo, hi = float(score_range[0]), float(score_range[1])
    if m.numel():
        mn, mx = torch.aminmax(m)
        mn, mx = mn.item(), mx.item()
        if not (math.isfinite(mn) and math.isfinite(mx)):
            bad = ~torch.isfinite(m)
            raise ValueError(f'{pred.path}: {score_field} contains {int(bad.sum())} non-finite value(s)')
        if mn < lo or mx > hi:
            raise ValueError(f'{pred.path}: {score_field} has values in [{mn:.4g}, {mx:.4g}], outside '
                             f'score_range=({lo:g}, {hi:g}); set score_range to the range of this score')
    x = (m - lo) / (hi - lo) if (lo, hi) != (0.0, 1.0) else m
    x = x.clamp(0, 1)  # only rounding of the affine map can leave [0, 1] here
    return 1 - x if score_is == 'uncertainty' else x
