"""The model-outputs file shared by ``uqseg dump-outputs`` and ``uqseg eval-selective``.

One file per model: a model's raw outputs on a labelled test set (and optionally on an OOD set),
so that a selective-prediction study of many models (Galil et al., 2023, ICLR: 523 ImageNet
classifiers) needs each model run once. Two containers, chosen by the extension:

* ``.npz``: numpy's uncompressed archive, read with ``np.load(allow_pickle=False)`` (no code runs);
* ``.pt``: a dict for ``torch.save``, read with ``torch.load(weights_only=True)``.

Keys::

    logits       (N, K) float   raw outputs z of the model, softmax(z) = p   } exactly one
    probs        (N, K) float   probabilities p (rows sum to 1, tol 1e-3)     } of the two
    labels       (N,)   int     ground-truth classes in [0, K)
    kind         str            'logits' | 'log_alpha' | 'distance_logits' with ``logits`` (default
                                'logits'); 'probs' with ``probs`` (the output kinds of
                                ``uqseg.core.scores.OUTPUT_KINDS``: EDL log alpha, DisMax L / T)
    ood_logits   (M, K) float   optional: the same model on an OOD set (``ood_probs`` with ``probs``)
    model        str            optional: the model's name (default: the file name without extension)
    classes      (K,) str       optional: the class names
    score        str            optional: the model's own score (its output layer's ``default_score``,
                                e.g. 'MDS' for IsoMax+; a name of ``uqseg.core.scores.SCORES`` the kind has,
                                or of ``member_scores``: 'mutual-information' for an ensemble)

A prediction of several members (an ensemble, MC-dropout passes, TTA views: ``uqseg dump-outputs``
of an ``EnsembleClassifier`` / ``MCDropoutImageClassifier`` config) holds the log of their mean
probability as ``logits`` (kind 'logits') and, as well::

    members            int          the number of members (passes, views), >= 1
    member_kinds       (M,) str     optional: the members' output kinds
    member_scores      name -> (N,) float64 raw maps of ``MemberStatistics.maps()`` (names of
                                    ``uqseg.core.scores.MEMBER_SCORES`` or averaged layer scores)
    ood_member_scores  name -> (M,) the same maps on the OOD rows (with ``ood_logits``)

In a ``.pt`` file ``member_scores`` is a dict; in a ``.npz`` file (no pickles) each map is the
array ``member_scores/<name>`` (``ood_member_scores/<name>``).

:func:`load_outputs` checks everything and raises ``ValueError`` naming the file: a missing or
unknown key, both ``logits`` and ``probs``, shapes that disagree, NaN/Inf rows (their count and
the first one), labels outside [0, K), probabilities outside [0, 1] or rows not summing to 1.

Probabilities saved as logits: softmax of probabilities is not the model's ``p`` (it flattens
every row towards uniform), yet every metric computed from it looks plausible. Logits of any kind
whose every row lies in [0, 1] and sums to 1 (``|sum - 1| <= PROBS_TOL``; test and OOD rows
alike) are refused unless the kind is *given*: by the caller of :func:`save_outputs` (an explicit
``kind=``) or of :func:`load_outputs` (``kind=``, ``uqseg eval-selective --kind``), who states
that these are logits; the ``kind`` read from a file is a claim, not a statement (any writer puts
it there, ``save_outputs`` by default). The check stops at the first rows that are not
probabilities (rows 1, 2, 4, ... chunk by chunk), so real logits cost it a few rows.
Loading copies no more than needed: the array numpy reads is shared by the returned tensor
(``torch.from_numpy``), float32 stays float32 (float16 / bfloat16 become float32).
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from . import selective
from .checks import value_range
from .scores import INPUT_KINDS, check_score_name, scores_of

__all__ = ['ModelOutputs', 'save_outputs', 'load_outputs', 'check_outputs', 'check_member_scores', 'FILE_KINDS',
           'EXTENSIONS', 'PROBS_TOL']

#: The kinds a file may hold: the output kinds of a layer (with ``logits``) and ``probs``.
FILE_KINDS = ('logits', 'log_alpha', 'distance_logits', 'probs')
EXTENSIONS = ('.npz', '.pt')
#: Largest |row sum - 1| accepted for probabilities (and taken for probabilities in logits).
PROBS_TOL = selective.PROB_SUM_TOL
#: The values a chunk of the probability-rows check holds at most (4 MB of float32).
_CHUNK_VALUES = 1 << 20
_KEYS = ('logits', 'probs', 'labels', 'kind', 'ood_logits', 'ood_probs', 'model', 'classes', 'score', 'members',
         'member_kinds', 'member_scores', 'ood_member_scores')
#: The keys holding a name -> map dict (``<key>/<name>`` arrays in a ``.npz`` file).
_MAP_KEYS = ('member_scores', 'ood_member_scores')


@dataclass
class ModelOutputs:
    """One model's outputs, as read by :func:`load_outputs`.

    ``values`` (N, K) float tensor (logits of ``kind``, or probabilities for ``kind='probs'``),
    ``labels`` (N,) int64, ``ood`` (M, K) of the same kind or None, ``model`` the file's name for
    the model (default: the file name without extension), ``classes`` the class names or None,
    ``score`` the model's own score or None; for several members ``members`` (their number; 0 for
    one model), ``member_kinds``, ``member_scores`` name -> ``(N,)`` float64 and
    ``ood_member_scores`` name -> ``(M,)`` (None for one model / without OOD outputs).
    """
    path: str
    model: str
    kind: str
    values: torch.Tensor
    labels: torch.Tensor
    ood: Optional[torch.Tensor] = None
    classes: Optional[list] = None
    score: Optional[str] = None
    members: int = 0
    member_kinds: tuple = ()
    member_scores: Optional[dict] = None
    ood_member_scores: Optional[dict] = None

    @property
    def num_classes(self) -> int:
        return int(self.values.shape[1])


def _own_score(score: str, kind: str, path: str, maps: Sequence[str] = ()) -> str:
    """``score`` if it names a score that outputs of ``kind`` have or one of the member ``maps``,
    else ``ValueError`` naming ``path``."""
    allowed = (selective.PROB_SCORES if kind == 'probs' else scores_of(kind)) + tuple(maps)
    if score not in allowed:
        raise ValueError(f"{path}: 'score' {score!r} is not a score of kind {kind!r} outputs; they have {allowed}")
    return score


def _extension(path: str) -> str:
    ext = osp.splitext(str(path))[1].lower()
    if ext not in EXTENSIONS:
        raise ValueError(f'{path}: a model-outputs file must end in .npz or .pt, got {ext or "no extension"!r}')
    return ext


def _tensor(x, path: str, key: str) -> torch.Tensor:
    """``x`` (array or tensor) as a CPU tensor sharing numpy's memory where it can."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    arr = np.asarray(x)
    if arr.dtype.kind not in 'biuf':
        raise ValueError(f'{path}: {key!r} must be numeric, got dtype {arr.dtype}')
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder('='))
    return torch.from_numpy(arr)


def _string(x, path: str, key: str) -> str:
    if isinstance(x, np.ndarray):
        if x.ndim != 0 or x.dtype.kind != 'U':
            raise ValueError(f'{path}: {key!r} must be a string, got an array of shape {x.shape} ({x.dtype})')
        x = x.item()
    if not isinstance(x, str):
        raise ValueError(f'{path}: {key!r} must be a string, got {type(x).__name__}')
    return x


def _looks_like_probabilities(v: torch.Tensor) -> bool:
    """Whether every row of the (N, K) ``v`` lies in [0, 1] and sums to 1 (``|sum - 1| <=
    PROBS_TOL``, sums in float64). Rows are read in chunks of 1, 2, 4, ... rows (at most
    ``_CHUNK_VALUES`` values), stopping at the first chunk with a row that is not a probability
    row; a NaN fails the range test."""
    n, k = v.shape
    cap = max(1, _CHUNK_VALUES // k)
    start, rows = 0, 1
    while start < n:
        c = v[start:start + rows]
        lo, hi = value_range(c)
        if not (float(lo) >= 0 and float(hi) <= 1):
            return False
        if float((c.sum(1, dtype=torch.float64) - 1).abs().max()) > PROBS_TOL:
            return False
        start, rows = start + rows, min(2 * rows, cap)
    return True


def _check_not_probabilities(v: torch.Tensor, path: str, key: str, kind: str) -> None:
    """Refuse logits of ``kind`` whose rows all look like probabilities (module docstring)."""
    if _looks_like_probabilities(v):
        raise ValueError(f'{path}: every row of {key!r} (kind {kind!r}) lies in [0, 1] and sums to 1 (tolerance '
                         f"{PROBS_TOL:g}): these look like probabilities, which scored as logits give softmax(p), "
                         f"not p. Save probabilities as kind 'probs' (key 'probs'); if they are {kind} indeed, "
                         f'give the kind: kind={kind!r} (uqseg eval-selective --kind {kind})')


def _check_values(v: torch.Tensor, path: str, key: str, kind: str, k: Optional[int] = None,
                  check_values: bool = True, kind_given: bool = False) -> torch.Tensor:
    if v.dim() != 2:
        raise ValueError(f'{path}: {key!r} must be (N, K), got shape {tuple(v.shape)}')
    if not v.is_floating_point():
        raise ValueError(f'{path}: {key!r} must be floating point, got dtype {v.dtype}')
    if v.dtype in (torch.float16, torch.bfloat16):
        v = v.float()
    if v.shape[0] == 0:
        raise ValueError(f'{path}: {key!r} holds no sample')
    if k is None and v.shape[1] < 2:
        raise ValueError(f'{path}: {key!r} must have K >= 2 classes (columns), got {v.shape[1]}')
    if k is not None and v.shape[1] != k:
        raise ValueError(f'{path}: {key!r} has {v.shape[1]} classes (columns), the test outputs {k}')
    if check_values:  # NaN / Inf rows, probabilities in [0, 1] summing to 1: the report's own checks
        selective.check_outputs(v, kind, f'{path}: {key!r}', finite=True)
    if kind != 'probs' and not kind_given:
        _check_not_probabilities(v, path, key, kind)
    return v


def check_outputs(path: str, values, labels, kind: str = 'logits', ood=None,
                  classes: Optional[Sequence[str]] = None, check_values: bool = True, kind_given: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Check one model's outputs (see the module docstring); return ``(values, labels, ood)`` as
    tensors (no copy of float32 / float64 values). Errors name ``path``. The value checks (NaN /
    Inf rows, probabilities) are :func:`uqseg.core.selective.check_outputs`'s; ``check_values=False``
    skips that pass over the values for a caller that scores them next (``selective_report`` runs
    the same checks), keeping the shape, kind and label checks. Logits whose rows all look like
    probabilities are refused unless ``kind_given`` (the caller states the kind; module docstring),
    with or without ``check_values``."""
    if kind not in FILE_KINDS:
        raise ValueError(f'{path}: kind must be one of {FILE_KINDS}, got {kind!r}')
    key = 'probs' if kind == 'probs' else 'logits'
    v = _check_values(_tensor(values, path, key), path, key, kind, check_values=check_values, kind_given=kind_given)
    y = _tensor(labels, path, 'labels')
    if y.dim() != 1:
        raise ValueError(f'{path}: labels must be (N,), got shape {tuple(y.shape)}')
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise ValueError(f'{path}: labels must be integer class indices, got dtype {y.dtype}')
    if y.shape[0] != v.shape[0]:
        raise ValueError(f'{path}: {key!r} has {v.shape[0]} rows but labels has {y.shape[0]}; they must be the '
                         'same samples')
    k = v.shape[1]
    y = selective.check_labels(y, v.shape[0], k, f'{path}: labels')
    o = None
    if ood is not None:
        o = _check_values(_tensor(ood, path, f'ood_{key}'), path, f'ood_{key}', kind, k, check_values, kind_given)
    if classes is not None and len(classes) != k:
        raise ValueError(f'{path}: classes has {len(classes)} names for {k} classes')
    return v, y, o


def check_member_scores(path: str, members, member_scores, ood_member_scores=None, member_kinds=None,
                        n: int = 0, n_ood: Optional[int] = None) -> tuple:
    """Check the member keys of one model's outputs (module docstring); return ``(members,
    member_kinds tuple, member_scores dict, ood_member_scores dict or None)`` with float64
    ``(n,)`` / ``(n_ood,)`` tensors. Errors name ``path`` and the key (and the score)."""
    if member_scores is None:
        for key, v in (('members', members), ('member_kinds', member_kinds), ('ood_member_scores', ood_member_scores)):
            if v is not None:
                raise ValueError(f"{path}: {key!r} without 'member_scores'; the maps of several members come with it")
        return 0, (), None, None
    if members is None:
        raise ValueError(f"{path}: 'member_scores' without 'members' (the number of members, passes or views)")
    m = members.item() if isinstance(members, (np.ndarray, torch.Tensor)) and members.ndim == 0 else members
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"{path}: 'members' must be an int >= 1 (the number of members), got {members!r}")
    kinds = ()
    if member_kinds is not None:
        kinds = tuple(member_kinds.tolist() if isinstance(member_kinds, np.ndarray) else member_kinds)
        bad = [k for k in kinds if k not in INPUT_KINDS]
        if bad or len(kinds) != m:
            raise ValueError(f"{path}: 'member_kinds' must be {m} kinds of {INPUT_KINDS} (one per member), got "
                             f'{list(kinds)}')
    maps = _maps(path, 'member_scores', member_scores, n)
    ood = None
    if ood_member_scores is not None:
        if n_ood is None:
            raise ValueError(f"{path}: 'ood_member_scores' without OOD outputs (ood_logits)")
        ood = _maps(path, 'ood_member_scores', ood_member_scores, n_ood)
        if list(ood) != list(maps):
            raise ValueError(f"{path}: 'ood_member_scores' holds {list(ood)}, 'member_scores' {list(maps)}; the OOD "
                             'rows need the same maps')
    return int(m), kinds, maps, ood


def _maps(path: str, key: str, maps, n: int) -> dict:
    """name -> float64 ``(n,)`` tensor of a member-maps dict, checked (errors name ``path``, ``key`` and the score)."""
    if not isinstance(maps, dict) or not maps:
        raise ValueError(f'{path}: {key!r} must be a non-empty dict of score name -> (N,) map, got '
                         f'{type(maps).__name__}')
    out = {}
    for name, m in maps.items():
        try:
            check_score_name(str(name), f'{key}[{name!r}]')
        except ValueError as e:
            raise ValueError(f'{path}: {e}') from None
        t = _tensor(m, path, f'{key}[{name!r}]')
        if t.dim() != 1 or t.shape[0] != n or not t.is_floating_point():
            raise ValueError(f'{path}: {key}[{name!r}] must be a float (N,) map with N = {n} rows, got shape '
                             f'{tuple(t.shape)} ({t.dtype})')
        t = t.to(torch.float64)
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise ValueError(f'{path}: {key}[{name!r}] holds {int(bad.sum())} NaN/Inf value(s), the first at row '
                             f'{int(bad.nonzero()[0, 0])}')
        out[str(name)] = t
    return out


def save_outputs(path: str, values, labels, kind: Optional[str] = None, ood=None, model: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None, score: Optional[str] = None, members: Optional[int] = None,
                 member_scores: Optional[dict] = None, ood_member_scores: Optional[dict] = None,
                 member_kinds: Optional[Sequence[str]] = None) -> str:
    """Check and write one model's outputs to ``path`` (``.npz`` or ``.pt``, by the extension;
    folders are created; written to a temporary file first, then renamed). ``values`` (N, K)
    logits of ``kind`` or probabilities (``kind='probs'``), ``labels`` (N,), ``ood`` (M, K) of the
    same kind. ``kind=None``: ``'logits'``, not given, so rows that all look like probabilities are
    refused (module docstring). A prediction of several members adds ``members``, ``member_scores``
    (name -> ``(N,)``), ``ood_member_scores`` and ``member_kinds`` (:func:`check_member_scores`).
    Returns ``path``."""
    ext = _extension(path)
    kind_given = kind is not None
    kind = 'logits' if kind is None else kind
    v, y, o = check_outputs(path, values, labels, kind, ood, classes, kind_given=kind_given)
    key = 'probs' if kind == 'probs' else 'logits'
    data = {key: v, 'labels': y, 'kind': kind}
    if o is not None:
        data[f'ood_{key}'] = o
    if model is not None:
        data['model'] = str(model)
    if classes is not None:
        data['classes'] = [str(c) for c in classes]
    members, member_kinds, maps, ood_maps = check_member_scores(
        path, members, member_scores, ood_member_scores, member_kinds, v.shape[0], None if o is None else o.shape[0])
    if maps is not None:
        data.update(members=members, member_scores=maps)
        if member_kinds:
            data['member_kinds'] = list(member_kinds)
        if ood_maps is not None:
            data['ood_member_scores'] = ood_maps
    if score is not None:
        data['score'] = _own_score(score, kind, path, maps or ())
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            if ext == '.npz':
                flat = {}
                for k, x in data.items():
                    flat.update({f'{k}/{name}': m for name, m in x.items()} if k in _MAP_KEYS else {k: x})
                arrays = {k: (x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)) for k, x in flat.items()}
                np.savez(f, **arrays)
            else:
                torch.save(data, f)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return path


def _read(path: str, ext: str) -> dict:
    try:
        if ext == '.npz':
            with np.load(path, allow_pickle=False) as npz:
                data = {}
                for k in npz.files:
                    key, _, name = k.partition('/')
                    if name and key in _MAP_KEYS:
                        data.setdefault(key, {})[name] = npz[k]
                    else:
                        data[k] = npz[k]
                return data
        data = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # a broken archive, pickled objects, a truncated file: all name the file
        raise ValueError(f'{path}: cannot read it as a model-outputs {ext} file ({type(e).__name__}: {e})') from e
    if not isinstance(data, dict):
        raise ValueError(f'{path}: a .pt model-outputs file must hold a dict, got {type(data).__name__}')
    return data


def load_outputs(path: str, check_values: bool = True, kind: Optional[str] = None) -> ModelOutputs:
    """Read and check one model-outputs file (module docstring); errors name the file
    (``check_values``: see :func:`check_outputs`). ``kind``: the kind the caller states the file
    holds (one of :data:`FILE_KINDS`): a file whose ``kind`` key differs is refused, a file without
    one is read as ``kind``, and logits are not refused for looking like probabilities; None: the
    file's ``kind`` (default ``'logits'``, or ``'probs'`` with ``probs``), not given."""
    path = str(path)
    ext = _extension(path)
    if kind is not None and kind not in FILE_KINDS:
        raise ValueError(f'{path}: the stated kind must be one of {FILE_KINDS}, got {kind!r}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such model-outputs file')
    data = _read(path, ext)
    unknown = sorted(set(map(str, data)) - set(_KEYS))
    if unknown:
        raise ValueError(f'{path}: unknown key(s) {unknown}; a model-outputs file holds {_KEYS}')
    if 'logits' in data and 'probs' in data:
        raise ValueError(f"{path}: holds both 'logits' and 'probs'; keep one (the raw outputs, or probabilities)")
    if 'logits' not in data and 'probs' not in data:
        raise ValueError(f"{path}: missing key 'logits' (or 'probs'); it holds {sorted(data)}")
    if 'labels' not in data:
        raise ValueError(f"{path}: missing key 'labels'; it holds {sorted(data)}")
    key = 'logits' if 'logits' in data else 'probs'
    stated = kind
    kind = _string(data['kind'], path, 'kind') if 'kind' in data else (stated or key)
    if stated is not None and kind != stated:
        raise ValueError(f"{path}: the file's kind is {kind!r}, but kind {stated!r} was stated for it")
    if key == 'probs' and kind != 'probs':
        raise ValueError(f"{path}: 'probs' with kind {kind!r}; probabilities are kind 'probs'")
    if key == 'logits' and kind not in FILE_KINDS[:3]:
        raise ValueError(f"{path}: 'logits' with kind {kind!r}; the kinds of logits are {FILE_KINDS[:3]} (save "
                         "probabilities as 'probs')")
    other = 'ood_probs' if key == 'logits' else 'ood_logits'
    if other in data:
        raise ValueError(f"{path}: {other!r} beside {key!r}; the OOD outputs must be of the same kind (ood_{key})")
    classes = data.get('classes')
    if classes is not None:
        if isinstance(classes, np.ndarray):
            if classes.ndim != 1 or classes.dtype.kind != 'U':
                raise ValueError(f"{path}: 'classes' must be a list of strings, got an array of {classes.dtype}")
            classes = classes.tolist()
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"{path}: 'classes' must be a list of strings")
        classes = list(classes)
    values, labels, ood = check_outputs(path, data[key], data['labels'], kind, data.get(f'ood_{key}'), classes,
                                        check_values, kind_given=stated is not None)
    model = _string(data['model'], path, 'model') if 'model' in data else osp.splitext(osp.basename(path))[0]
    members, member_kinds, maps, ood_maps = check_member_scores(
        path, data.get('members'), data.get('member_scores'), data.get('ood_member_scores'), data.get('member_kinds'),
        values.shape[0], None if ood is None else ood.shape[0])
    score = _own_score(_string(data['score'], path, 'score'), kind, path, maps or ()) if 'score' in data else None
    return ModelOutputs(path=path, model=model, kind=kind, values=values, labels=labels, ood=ood, classes=classes,
                        score=score, members=members, member_kinds=member_kinds, member_scores=maps,
                        ood_member_scores=ood_maps)
