"""Rank models by selective prediction and calibration from their saved outputs (Galil et al., 2023).

    uqseg eval-selective FILES... [--rank-by AURC] [--confidence max-prob [entropy own ...]]
        [--accuracy-targets 0.95 0.99] [--coverages 0.5 0.8 0.9 0.95] [--n-bins 15] [--fpr-tpr 0.95]
        [--fit-temperature [--calib-fraction 0.1] [--seed 0] [--ts-method nll|ece]]
        [--csv OUT.csv] [--plots DIR] [--curve-points 1000] [--require-ood] [--skip-bad]
        [--kind KIND] [--allow-different-labels]

FILES are model-outputs files (``.npz`` / ``.pt`` of ``uqseg.core.output_files``, as ``uqseg
dump-outputs`` writes them), folders (their ``.npz`` / ``.pt`` files) or glob patterns. The models
are scored one at a time (a file is loaded, scored by ``uqseg.core.selective.selective_report`` and
dropped before the next is read), so only one model's outputs are ever in memory; one progress line
per file goes to stderr, the table to stdout.

Output: a table ranked by ``--rank-by`` (rank, model, accuracy, AURC, E-AURC, AUROC, ECE, NLL,
Brier, coverage at each selective-accuracy target, risk at each coverage, and OOD-AUROC / OOD-FPR
when the files hold OOD outputs), and with ``--csv`` every key of every report. ``--rank-by``
takes a metric name (``AURC``, ``E-AURC``, ``AUROC``, ``accuracy``, ``ECE``, ``NLL``, ``Brier``,
``cov@acc0.95``, ``risk@cov0.8``, ``OOD-AUROC``, ``OOD-FPR95``: the first ``--confidence``'s) or a
report key (``AURC[entropy]``, ``AURC[own]``); lower is better for AURC, E-AURC, ECE, NLL, Brier,
risk and FPR, higher for the rest; NaN ranks last. Conventions: docs/metrics.md#selective-prediction.

--confidence: the confidences scored (the first fills the table and the ranking, all go to the
CSV): max-prob (default), entropy, margin, a layer's score (vacuity, MMLES, ...) or own, the
model's own score: the file's ``score`` (``uqseg dump-outputs`` writes the output layer's
``default_score``: vacuity for EDL, MMLES for DisMax, MDS for IsoMax+), else the kind's default
(``uqseg.core.default_scores``: vacuity for log_alpha, MMLES for distance_logits, max-prob for
logits / probs).

Ensembles (``uqseg dump-outputs`` of an ``EnsembleClassifier`` / ``MCDropoutImageClassifier``
config): the file's ``logits`` are the log of the members' mean probability, ranked like any
model's, and every member score the file carries (``member_scores``: mutual-information,
expected-entropy, class-variance, disagreement, averaged layer scores) is a confidence of that file
too (in the CSV, in ``--rank-by AURC[mutual-information]``, and in a second table of each such
file's AURC / AUROC / OOD-AUROC per member score beside the first confidence); ``own`` is its
``score``, mutual-information. A member score asked by ``--confidence`` of a single model's file
is an error naming the file (``--skip-bad`` skips it).

--fit-temperature (Guo et al., 2017): per file, a seeded random split (the first
``round(calib_fraction N)`` rows of ``randperm`` with ``--seed``, at least 1 and at most N - 1, are
held out); T is fitted on them by ``uqseg.core.temperature.fit_temperature_result`` (``--ts-method``)
and applied by ``apply_temperature``, as a temperature-scaled model applies its T; both rows,
``model`` (raw) and ``model+TS``, are evaluated on the remaining part. Kinds temperature scaling does
not apply to (``log_alpha``, ``probs``) are refused by the scaled models' rule
(``uqseg.core.temperature_kinds``). The printout adds the Spearman rank correlation over models of
the rank-by values (and AUROC's, ECE's) before and after scaling.

--plots DIR: risk_coverage.png, auroc_vs_accuracy.png and, with --fit-temperature,
temperature_scaling.png (each model's AUROC and ECE before and after).

Refusals (one line, exit status 1; --debug for the traceback): a file that fails ``load_outputs``
(missing keys, lengths that disagree, NaN/Inf rows, labels outside [0, K), probabilities not summing
to 1, ...) names the file; --skip-bad turns it into a warning and skips the file. Files may have
different class counts. --require-ood, or a rank-by key on OOD data, makes a file without OOD
outputs an error. Logits whose rows all look like probabilities are refused unless --kind states
the kind of every file. A ranking compares models on the same samples: every file's labels must
equal the first file's (same length and order) unless --allow-different-labels.
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import os.path as osp
import sys
import time
from typing import Optional

import numpy as np
import torch
from matplotlib import colormaps

from uqseg.core.default_scores import own_score_of
from uqseg.core.output_files import EXTENSIONS, FILE_KINDS, load_outputs
from uqseg.core.plots import new_figure, save_figure
from uqseg.core.scores import MEMBER_SCORES, OWN_SCORE, SCORES
from uqseg.core.selective import CONFIDENCES, selective_report
from uqseg.core.temperature import apply_temperature, fit_temperature_result
from uqseg.core.temperature_kinds import check_temperature_kind

#: Report keys that do not depend on the confidence.
PLAIN_KEYS = ('accuracy', 'ECE', 'NLL', 'Brier')
_LOWER = ('AURC', 'E-AURC', 'ECE', 'NLL', 'Brier')


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument('files', nargs='+', help='model-outputs files (.npz / .pt), folders or glob patterns')
    ap.add_argument('--rank-by', default='AURC', help='metric or report key to rank by (default AURC)')
    ap.add_argument('--confidence', nargs='+', default=['max-prob'],
                    help="confidences to score; the first ranks (default max-prob; 'own' = the model's own score)")
    ap.add_argument('--accuracy-targets', nargs='+', type=float, default=[0.95, 0.99],
                    help='selective-accuracy targets of the cov@acc columns (default 0.95 0.99)')
    ap.add_argument('--coverages', nargs='+', type=float, default=[0.5, 0.8, 0.9, 0.95],
                    help='coverages of the risk@cov columns (default 0.5 0.8 0.9 0.95)')
    ap.add_argument('--n-bins', type=int, default=15, help='ECE bins (default 15)')
    ap.add_argument('--fpr-tpr', type=float, default=0.95, help='TPR of the OOD FPR (default 0.95)')
    ap.add_argument('--fit-temperature', action='store_true', help='add a temperature-scaled row per model')
    ap.add_argument('--calib-fraction', type=float, default=0.1, help='held-out part for T (default 0.1)')
    ap.add_argument('--seed', type=int, default=0, help='seed of the held-out split (default 0)')
    ap.add_argument('--ts-method', choices=('nll', 'ece'), default='nll', help='objective of the T fit (default nll)')
    ap.add_argument('--csv', help='write every key of every report here')
    ap.add_argument('--plots', metavar='DIR', help='write the comparison plots here')
    ap.add_argument('--curve-points', type=int, default=1000, help='points kept per risk-coverage curve (1000)')
    ap.add_argument('--require-ood', action='store_true', help='every file must hold OOD outputs')
    ap.add_argument('--skip-bad', action='store_true', help='warn about and skip files that cannot be scored')
    ap.add_argument('--kind', choices=FILE_KINDS,
                    help='state the kind every file holds (a file of another kind is refused): logits whose rows '
                         'look like probabilities are then read as logits')
    ap.add_argument('--allow-different-labels', action='store_true',
                    help='score files whose labels differ (by default every file must hold the same samples)')


def warn(message: str) -> None:
    """A warning as one line on stderr (``warning: ...``), beside the progress lines."""
    print(f'warning: {message}', file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# inputs, names, split
# ----------------------------------------------------------------------------------------------
def expand_inputs(items) -> list[str]:
    """Files, folders (their .npz / .pt files, sorted) and glob patterns, in order, without repeats."""
    out = []
    for item in items:
        if osp.isdir(item):
            found = sorted(osp.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(EXTENSIONS) and osp.isfile(osp.join(item, f)))
            if not found:
                raise ValueError(f'{item}: the folder holds no .npz / .pt model-outputs file')
        elif glob.has_magic(item) and not osp.exists(item):
            found = sorted(f for f in glob.glob(item) if osp.isfile(f))
            if not found:
                raise ValueError(f'{item}: the pattern matches no file')
        else:
            found = [item]  # a missing file is reported by load_outputs, naming it
        out += [f for f in found if f not in out]
    return out


def resolve_confidences(names, kind: str, own: Optional[str] = None, maps=()) -> list[str]:
    """The confidences of a file of ``kind``: 'own' replaced by the model's own score (the file's
    ``score`` ``own``, else the kind's default: :func:`uqseg.core.default_scores.own_score_of`),
    then every member map ``maps`` the file carries, repeats dropped."""
    out = []
    for c in list(names) + list(maps):
        if c == OWN_SCORE:
            c = own if own is not None and own in maps else own_score_of(kind, own)
        if c not in out:
            out.append(c)
    return out


def check_confidence_names(names) -> None:
    known = tuple(dict.fromkeys((*CONFIDENCES, *SCORES, *MEMBER_SCORES, OWN_SCORE)))
    bad = [c for c in names if c not in known]
    if bad:
        raise ValueError(f'--confidence {bad[0]!r} is not a confidence; choose from {known}')


def metric_keys(conf: str, targets, coverages, fpr_tpr: float, ood: bool) -> dict[str, str]:
    """Table column -> report key, for the confidence ``conf``."""
    cols = {k: k for k in PLAIN_KEYS[:1]}
    cols.update({m: f'{m}[{conf}]' for m in ('AURC', 'E-AURC', 'AUROC')})
    cols.update({k: k for k in PLAIN_KEYS[1:]})
    cols.update({f'cov@acc{a:g}': f'cov@acc{a:g}[{conf}]' for a in targets})
    cols.update({f'risk@cov{v:g}': f'risk@cov{v:g}[{conf}]' for v in coverages})
    if ood:
        cols['OOD-AUROC'] = f'OOD-AUROC[{conf}]'
        cols[f'OOD-FPR{round(100 * fpr_tpr)}'] = f'OOD-FPR{round(100 * fpr_tpr)}[{conf}]'
    return cols


def rank_base(rank_by: str) -> str:
    return rank_by.split('[', 1)[0]


def check_rank_by(rank_by: str, args) -> None:
    base = rank_base(rank_by)
    names = list(metric_keys('c', args.accuracy_targets, args.coverages, args.fpr_tpr, True))
    if base not in names:
        raise ValueError(f'--rank-by {rank_by!r}: not a metric of the report; choose from {names} (or a report '
                         "key such as 'AURC[entropy]')")
    if '[' in rank_by:
        if base in PLAIN_KEYS:
            raise ValueError(f'--rank-by {rank_by!r}: {base} does not depend on the confidence; use {base!r}')
        conf = rank_by[len(base) + 1:].rstrip(']')
        if conf not in args.confidence and conf not in MEMBER_SCORES:
            raise ValueError(f'--rank-by {rank_by!r}: the confidence {conf!r} is not scored; add it to --confidence '
                             f'(the member scores {MEMBER_SCORES} of an ensemble\'s file are scored anyway)')


def needs_ood(rank_by: str) -> bool:
    return rank_base(rank_by).startswith('OOD-')


def lower_is_better(rank_by: str) -> bool:
    base = rank_base(rank_by)
    return base in _LOWER or base.startswith('risk@') or 'FPR' in base


def rank_key_of(rank_by: str, row: dict) -> str:
    """The report key ranked on for a row (its first confidence unless ``rank_by`` names one;
    ``[own]``: the row's own score)."""
    if '[' in rank_by:
        base = rank_base(rank_by)
        c = rank_by[len(base) + 1:].rstrip(']')
        return f'{base}[{row["own_score"] if c == OWN_SCORE else c}]'
    return rank_by if rank_by in PLAIN_KEYS else f'{rank_by}[{row["confidence"]}]'


def calibration_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out indices, evaluation indices): a seeded permutation, the first ``round(fraction n)``
    (clamped to [1, n - 1]) held out; both sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = min(max(int(round(fraction * n)), 1), n - 1)
    return perm[:k].sort().values, perm[k:].sort().values


class SameSamples:
    """The labels of the first file scored, which every later file's must equal: a ranking
    compares models on the same samples in the same order."""

    def __init__(self):
        self.path: Optional[str] = None
        self.labels: Optional[torch.Tensor] = None

    def check(self, path: str, labels: torch.Tensor) -> None:
        """``ValueError`` naming ``path``, the reference file and the first differing row, unless
        ``labels`` equal the reference's (none yet: nothing to compare)."""
        if self.labels is None:
            return
        ref, hint = self.labels, ('a ranking compares models on the same samples; give --allow-different-labels to '
                                  'score each file on its own samples')
        if labels.shape != ref.shape:
            raise ValueError(f'{path}: holds {labels.numel()} labels, {self.path} {ref.numel()}; {hint}')
        diff = labels != ref
        if bool(diff.any()):
            r = int(diff.nonzero()[0, 0])
            raise ValueError(f'{path}: its labels differ from those of {self.path} in {int(diff.sum())} of '
                             f'{ref.numel()} rows, the first is row {r} (label {int(labels[r])}, there '
                             f'{int(ref[r])}); {hint}')

    def keep(self, path: str, labels: torch.Tensor) -> None:
        """Make ``labels`` (a scored file's) the reference if there is none yet."""
        if self.labels is None:
            self.path, self.labels = path, labels


# ----------------------------------------------------------------------------------------------
# one model
# ----------------------------------------------------------------------------------------------
def _report(path, z, y, kind, confs, args, ood, curves, members=None):
    """The report of one file's rows; ``members``: ``(maps, ood maps, member kinds)`` of an ensemble's file."""
    maps, ood_maps, kinds = members or (None, None, ())
    try:
        rep = selective_report(z, y, kind=kind, confidences=tuple(confs), accuracy_targets=tuple(args.accuracy_targets),
                               coverages=tuple(args.coverages), n_bins=args.n_bins, ood_z=ood, fpr_tpr=args.fpr_tpr,
                               curves=curves, curve_points=args.curve_points, member_maps=maps,
                               ood_member_maps=ood_maps, member_kinds=kinds, source=path)
    except ValueError as e:
        raise ValueError(f'{path}: {e}') from e
    rep.pop('reliability', None)
    curve = rep.pop('curves', {}).get(confs[0]) if curves else None
    if curve is not None:
        curve = {k: np.asarray(torch.as_tensor(v, dtype=torch.float64)) for k, v in curve.items()}
    return rep, curve


def fit_held_out(path: str, z: torch.Tensor, y: torch.Tensor, args) -> float:
    """``T`` fitted on the held-out rows ``(z, y)`` with ``--ts-method``; a bound reached is a
    warning line naming ``path`` (``T`` is then the bound, not the optimum)."""
    try:
        fit = fit_temperature_result(z, y, method=args.ts_method, n_bins=args.n_bins, seed=args.seed)
    except ValueError as e:
        raise ValueError(f'{path}: fitting T: {e}') from e
    if fit.bound_reached:
        warn(f'{path}: {fit.message()}')
    return float(fit.temperature)


def score_file(path: str, args, samples: Optional[SameSamples] = None) -> list[dict]:
    """The rows of one file (raw, and with ``--fit-temperature`` the TS row): file facts, the
    report's scalar keys, and ``_curve`` (plots only). ``samples``: the labels the file's must
    equal (:class:`SameSamples`; kept as the reference once the file is scored, if the first)."""
    # the report checks the values (errors name the file)
    mo = load_outputs(path, check_values=False, kind=args.kind)
    labels = mo.labels
    if samples is not None:
        samples.check(path, labels)
    if mo.ood is None and (args.require_ood or needs_ood(args.rank_by)):
        why = '--require-ood' if args.require_ood else f'--rank-by {args.rank_by}'
        raise ValueError(f'{path}: {why} needs OOD outputs, but the file holds none (ood_logits / ood_probs; '
                         'uqseg dump-outputs --ood-dataset writes them)')
    maps, ood_maps = mo.member_scores, mo.ood_member_scores
    confs = resolve_confidences(args.confidence, mo.kind, mo.score, list(maps or ()))
    kind, model, ood = mo.kind, mo.model, mo.ood
    curves = bool(args.plots)
    own = mo.score if maps and mo.score in maps else own_score_of(kind, mo.score)
    base = dict(model=model, file=path, kind=kind, own_score=own, confidence=confs[0],
                num_classes=mo.num_classes, n_ood=0 if ood is None else int(ood.shape[0]), members=mo.members,
                _member_scores=[c for c in confs if maps and c in maps])
    if not args.fit_temperature:
        n = int(mo.labels.numel())
        z, y, members = mo.values, mo.labels, (maps, ood_maps, mo.member_kinds)
        del mo
        rep, curve = _report(path, z, y, kind, confs, args, ood, curves, members)
        return _scored(samples, path, labels, [dict(base, n=n, **rep, _curve=curve)])
    check_temperature_kind(kind, path, '--fit-temperature: the file holds')
    n = int(mo.labels.numel())
    if n < 2:
        raise ValueError(f'{path}: --fit-temperature needs at least 2 samples to hold some out, got {n}')
    cal, ev = calibration_split(n, args.calib_fraction, args.seed)
    z_cal, y_cal = mo.values[cal], mo.labels[cal]
    z, y = mo.values[ev], mo.labels[ev]
    # the member maps are the members' (not changed by scaling their mean): the evaluation rows'
    members = (None if maps is None else {k: v[ev] for k, v in maps.items()}, ood_maps, mo.member_kinds)
    del mo  # from here the evaluation part is the only copy of the outputs
    t = fit_held_out(path, z_cal, y_cal, args)
    del z_cal, y_cal
    part = dict(base, n=int(ev.numel()), n_calib=int(cal.numel()))
    raw, curve = _report(path, z, y, kind, confs, args, ood, curves, members)
    rows = [dict(part, T=1.0, **raw, _curve=curve, _ts=False)]
    # the scaled model's rule (TemperatureBuffer.scale_logits): z / T in the outputs' dtype
    z = apply_temperature(z, t)
    ts, curve = _report(path, z, y, kind, confs, args, None if ood is None else apply_temperature(ood, t), curves,
                        members)
    rows.append(dict(part, model=f'{model}+TS', T=t, **ts, _curve=curve, _ts=True))
    return _scored(samples, path, labels, rows)


def _scored(samples: Optional[SameSamples], path: str, labels: torch.Tensor, rows: list[dict]) -> list[dict]:
    """``rows``, once the file's ``labels`` are kept as the reference (if the first scored)."""
    if samples is not None:
        samples.keep(path, labels)
    return rows


# ----------------------------------------------------------------------------------------------
# ranking, table, CSV, rank correlation
# ----------------------------------------------------------------------------------------------
def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def rank_confidence(key: str) -> Optional[str]:
    """The confidence of a report key (``AURC[mutual-information]`` -> ``mutual-information``), None if none."""
    return key[len(rank_base(key)) + 1:-1] if '[' in key else None


def rank_rows(rows: list[dict], rank_by: str) -> list[dict]:
    """Rows sorted best first by their rank key (NaN last, ties in input order), ``rank`` set; a
    member score's key is NaN for a single model's row (it has none)."""
    lower = lower_is_better(rank_by)
    for r in rows:
        key = rank_key_of(rank_by, r)
        if key not in r and rank_confidence(key) in MEMBER_SCORES:
            r[key] = math.nan  # a single model has no member score: ranked last
        if key not in r:
            scalar = sorted(k for k in r if not k.startswith('_'))
            raise ValueError(f"{r['file']}: --rank-by {rank_by!r} needs the report key {key!r}, which the report of "
                             f'{r["model"]} lacks; its keys are {scalar}')
        r['rank_key'] = key

    def order(r):
        v = _num(r[r['rank_key']])
        return (math.isnan(v), v if lower else -v)

    out = sorted(rows, key=order)
    for i, r in enumerate(out, 1):
        r['rank'] = i
    return out


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, ties sharing their mean rank."""
    order = np.argsort(x, kind='stable')
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation of paired values: Pearson's r of their average ranks (pairs
    with a NaN dropped; NaN below 2 pairs or for a constant side)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(np.corrcoef(average_ranks(a), average_ranks(b))[0, 1])


def ts_rank_correlations(rows: list[dict], rank_by: str) -> dict[str, float]:
    """Spearman correlation over models of the rank-by key, AUROC and ECE before vs after TS."""
    raw = {r['file']: r for r in rows if r.get('_ts') is False}
    ts = {r['file']: r for r in rows if r.get('_ts')}
    files = [f for f in raw if f in ts]
    out = {}
    for name in dict.fromkeys((rank_by, 'AUROC', 'ECE')):
        vals = [(_num(raw[f].get(rank_key_of(name, raw[f]))), _num(ts[f].get(rank_key_of(name, ts[f]))))
                for f in files]
        out[name] = spearman([v[0] for v in vals], [v[1] for v in vals]) if vals else math.nan
    return out


def _fmt(v) -> str:
    v = _num(v)
    return 'nan' if math.isnan(v) else f'{v:.4f}'


def format_table(rows: list[dict], args, ood: bool, show_conf: bool) -> str:
    """The ranked table: rank, model, [confidence], [T], then :func:`metric_keys`' columns."""
    names = list(metric_keys('c', args.accuracy_targets, args.coverages, args.fpr_tpr, ood))
    width = min(max([len('model')] + [len(r['model']) for r in rows]), 48)
    widths = [max(9, len(c) + 1) for c in names]
    head = f'{"rank":>4}  {"model":<{width}}' + (f'  {"confidence":<10}' if show_conf else '')
    head += (f'{"T":>8}' if args.fit_temperature else '') + ''.join(f'{c:>{w}}' for c, w in zip(names, widths))
    lines = [head]
    for r in rows:
        cols = metric_keys(r['confidence'], args.accuracy_targets, args.coverages, args.fpr_tpr, ood)
        line = f'{r["rank"]:>4}  {r["model"][:width]:<{width}}' + (f'  {r["confidence"]:<10}' if show_conf else '')
        line += f'{_fmt(r.get("T")):>8}' if args.fit_temperature else ''
        line += ''.join(f'{_fmt(r.get(cols[c], math.nan)):>{w}}' for c, w in zip(names, widths))
        lines.append(line)
    return '\n'.join(lines)


def member_table(rows: list[dict], ood: bool) -> Optional[str]:
    """The rows of ensembles' files (member scores): per row, AURC / AUROC (/ OOD-AUROC) of its first
    confidence and of each member score, so mutual information is read beside max-prob; None without any."""
    ens = [r for r in rows if r.get('_member_scores')]
    if not ens:
        return None
    metrics = ['AURC', 'AUROC'] + (['OOD-AUROC'] if ood else [])
    width = min(max([len('model')] + [len(r['model']) for r in ens]), 48)
    lines = [f'member scores of {len(ens)} ensemble row(s) (M = members):',
             f'{"rank":>4}  {"model":<{width}}{"M":>4}  {"confidence":<20}' + ''.join(f'{m:>11}' for m in metrics)]
    for r in ens:
        for c in [r['confidence']] + [c for c in r['_member_scores'] if c != r['confidence']]:
            lines.append(f'{r["rank"]:>4}  {r["model"][:width]:<{width}}{r["members"]:>4}  {c:<20}'
                         + ''.join(f'{_fmt(r.get(f"{m}[{c}]", math.nan)):>11}' for m in metrics))
    return '\n'.join(lines)


def clamp_notes(rows: list[dict]) -> list[str]:
    """One line per probability file whose NLL the 1e-12 clamp changed (``NLL-clamped`` of the
    report: logits files need no clamp), so a clamped NLL is never read as the model's."""
    seen, out = set(), []
    for r in rows:
        n = _num(r.get('NLL-clamped', 0))
        if n > 0 and r['file'] not in seen:
            seen.add(r['file'])
            out.append(f'note: {r["model"]}: NLL clamps p_y at 1e-12 in {n:.0f} row(s) (kind probs); the model\'s own '
                       'NLL is larger (save logits to get it exactly)')
    return out


def write_csv(path: str, rows: list[dict]) -> str:
    head = ['rank', 'model', 'file', 'kind', 'confidence', 'rank_key', 'num_classes', 'n', 'n_calib', 'n_ood', 'T']
    keys = []
    for r in rows:
        keys += [k for k in r if k not in head and not k.startswith('_') and k not in keys]
    fields = [h for h in head if any(h in r for r in rows)] + keys
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields, restval='')
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in fields if k in r})
    return path


# ----------------------------------------------------------------------------------------------
# plots (Agg canvases of uqseg.core.plots)
# ----------------------------------------------------------------------------------------------
def _colours(n: int):
    cmap = colormaps['tab10' if n <= 10 else 'turbo']
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _model_colours(rows):
    files = list(dict.fromkeys(r['file'] for r in rows))
    return dict(zip(files, _colours(len(files))))


def plot_risk_coverage(rows, path: str) -> str:
    fig = new_figure(6.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    colours = _model_colours(rows)
    for r in rows:
        c = r.get('_curve')
        if c is None:
            continue
        ts = bool(r.get('_ts'))
        aurc = _fmt(r['AURC[' + r['confidence'] + ']'])
        ax.plot(c['coverage'], c['risk'], '--' if ts else '-', color=colours[r['file']], linewidth=1.2,
                label=f"{r['model']} (AURC {aurc})")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel('coverage')
    ax.set_ylabel('selective risk (error rate)')
    ax.set_title('risk-coverage curves' + (f" ({rows[0]['confidence']})" if rows else ''), fontsize=10)
    if len(rows) <= 20:
        ax.legend(loc='upper left', fontsize=7)
    return save_figure(fig, path)


def plot_auroc_vs_accuracy(rows, path: str) -> str:
    fig = new_figure(5.6, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    colours = _model_colours(rows)
    for r in rows:
        ts = bool(r.get('_ts'))
        x, y = _num(r['accuracy']), _num(r[f"AUROC[{r['confidence']}]"])
        ax.scatter([x], [y], marker='x' if ts else 'o', color=colours[r['file']], s=28)
        if len(rows) <= 30 and not ts:  # a TS row sits at the same accuracy: one label per model
            ax.annotate(r['model'], (x, y), fontsize=6, xytext=(3, 3), textcoords='offset points')
    ax.set_xlabel('accuracy')
    ax.set_ylabel('AUROC (correct vs incorrect)')
    ax.set_title('ranking quality vs accuracy (o raw, x temperature-scaled)', fontsize=9)
    return save_figure(fig, path)


def plot_ts_before_after(rows, path: str) -> str:
    raw = {r['file']: r for r in rows if not r.get('_ts')}
    ts = {r['file']: r for r in rows if r.get('_ts')}
    colours = _model_colours(rows)
    fig = new_figure(8.4, 4.4)
    fig.subplots_adjust(wspace=0.3, right=0.78 if len(raw) <= 20 else 0.96)
    for i, metric in enumerate(('AUROC', 'ECE')):
        ax = fig.add_subplot(1, 2, i + 1)
        for f, r in raw.items():
            if f not in ts:
                continue
            key = f'{metric}[{r["confidence"]}]' if metric == 'AUROC' else metric
            ax.plot([0, 1], [_num(r[key]), _num(ts[f][key])], '-o', color=colours[f], markersize=4, linewidth=1,
                    label=r['model'])
        ax.set_xticks([0, 1])
        ax.set_xticklabels(['raw', 'temperature-scaled'])
        ax.set_xlim(-0.2, 1.2)
        ax.set_ylabel(metric)
        ax.set_title(f'{metric} before / after TS', fontsize=9)
        if metric == 'ECE':
            ax.set_ylim(bottom=0)
        if i == 1 and len(raw) <= 20:
            ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
def check_options(args) -> None:
    """The options, refused before any file is read."""
    check_confidence_names(args.confidence)
    check_rank_by(args.rank_by, args)
    if args.fit_temperature and not 0 < args.calib_fraction < 1:
        raise ValueError(f'--calib-fraction must lie in (0, 1), got {args.calib_fraction}')


def score_files(files: list[str], args) -> tuple[list[dict], list[tuple[str, str]]]:
    """Every file's rows, one progress line per file on stderr; ``(rows, skipped (path, reason))``."""
    rows, skipped = [], []
    samples = None if args.allow_different_labels else SameSamples()
    for i, path in enumerate(files, 1):
        start = time.perf_counter()
        try:
            new = score_file(path, args, samples)
        except (ValueError, OSError) as e:
            if not args.skip_bad:
                raise
            skipped.append((path, str(e)))
            warn(f'skipped {path}: {e}')
            continue
        rows += new
        s = time.perf_counter() - start
        r = new[0]
        n = r['n'] + r.get('n_calib', 0)
        t = f', T = {new[-1]["T"]:.4g}' if args.fit_temperature else ''
        print(f'[{i}/{len(files)}] {r["model"]}: {n} x {r["num_classes"]} {r["kind"]}{t} in {s:.2f} s '
              f'({n / max(s, 1e-9):,.0f} rows/s)', file=sys.stderr, flush=True)
    return rows, skipped


def run(args: argparse.Namespace) -> dict:
    check_options(args)
    files = expand_inputs(args.files)
    start = time.perf_counter()
    rows, skipped = score_files(files, args)
    if not rows:
        raise ValueError(f'no file could be scored ({len(skipped)} skipped: {[p for p, _ in skipped]})')
    rows = rank_rows(rows, args.rank_by)
    ood = any(r['n_ood'] for r in rows)
    show_conf = len({r['confidence'] for r in rows}) > 1
    n_models = len({r['file'] for r in rows})
    direction = 'lower' if lower_is_better(args.rank_by) else 'higher'
    print(f'{n_models} model(s), ranked by {args.rank_by} ({direction} is better), confidence '
          f'{rows[0]["confidence"] if not show_conf else "per file"}, ECE with {args.n_bins} bins'
          + (f'; TS rows: T fitted ({args.ts_method}) on a seeded {args.calib_fraction:g} held-out part, every '
             'row evaluated on the rest' if args.fit_temperature else '')
          + f' ({time.perf_counter() - start:.2f} s)')
    print(format_table(rows, args, ood, show_conf))
    members = member_table(rows, ood)
    if members:
        print(members)
    for line in clamp_notes(rows):
        print(line)
    result = dict(rows=rows, skipped=skipped, plots=[], csv=None, spearman=None)
    if args.fit_temperature:
        rho = ts_rank_correlations(rows, args.rank_by)
        result['spearman'] = rho
        print('Spearman rank correlation over models, before vs after TS: '
              + ', '.join(f'{k} {_fmt(v)}' for k, v in rho.items()))
    if args.csv:
        result['csv'] = write_csv(args.csv, rows)
        print(f'wrote {args.csv}')
    if args.plots:
        out = [plot_risk_coverage(rows, osp.join(args.plots, 'risk_coverage.png')),
               plot_auroc_vs_accuracy(rows, osp.join(args.plots, 'auroc_vs_accuracy.png'))]
        if args.fit_temperature:
            out.append(plot_ts_before_after(rows, osp.join(args.plots, 'temperature_scaling.png')))
        result['plots'] = out
        print('wrote ' + ', '.join(out))
    if skipped:
        warn(f'{len(skipped)} of {len(files)} file(s) skipped: ' + ', '.join(p for p, _ in skipped))
    return result
