"""The baselines comparison: one model, a deep ensemble, MC dropout and TTA beside the seed papers' methods.

    uqseg compare-baselines --demo shapes|sod|cls [--seeds 0 1 2] [--members 5] [--passes 10]
                            [--work-dir work_dirs/baselines] [--methods NAME ...] [--jobs N]
    make compare-baselines     # the three demos, 3 seeds

On one demo (``shapes``: the multiclass shapes data with its OOD class; ``sod``: the synthetic
SOD data with DTD textures as OOD; ``cls``: Fashion-MNIST with MNIST as OOD) it trains, for each
seed ``k`` of ``--seeds``, the members ``k M .. k M + M - 1`` of the plain config (so the ensembles
of different seeds share no member) and the seed papers' methods at seed ``k``, then tests, per seed:

* ``single``       the first member alone;
* ``ensemble xM``  the M members (``EnsembleSegmentor`` / ``EnsembleClassifier``);
* ``MC dropout``   T stochastic passes (``--passes``, seed k) of the single model (its head's
                   dropout; the classifier demo trains its own dropout config);
* ``TTA (flip)``   the single model on the image and its mirror, the views as members;
* the methods      e.g. EDL and DisMax (shapes, cls), ASLP (sod), each with its own score.

Each run is a ``uqseg train`` / ``uqseg test`` subprocess with its log in its folder
(``<work-dir>/<demo>/seed<s>/<config>`` for trainings, ``<work-dir>/<demo>/eval/<row>/seed<k>``
for tests); finished ones are reused, so an interrupted comparison resumes. Every test scores
max-prob and the row's own score (mutual information for several members), so the table shows
accuracy / mIoU, ECE, NLL, misclassification AUROC / AURC and OOD AUROC for both, mean +- std
over the seeds, and checks the well-known findings (``docs/ensembles.md#evidence``). The table
goes to ``<work-dir>/<demo>/baselines.md`` and its numbers to ``baselines.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from uqseg.cli.configs import find_config, read_config
from uqseg.cli.demo import (
    Stages,
    config_name,
    job_env,
    last_checkpoint,
    run_jobs,
    train_and_test,
    uqseg_command,
    usable_cpus,
    write_report,
)
from uqseg.cli.test import METRICS_FILE
from uqseg.cli.train_members import write_ensemble_config
from uqseg.core.default_scores import MEMBER_OWN_SCORE

__all__ = ['Row', 'Demo', 'DEMOS', 'member_seeds', 'wrapper_config', 'row_table', 'findings', 'compare_baselines']



class Row(NamedTuple):
    """One row of the table: its label, how it is made and the own score it is ranked by."""
    label: str
    kind: str             # 'single', 'ensemble', 'mc-dropout', 'tta' or 'method'
    config: str           # the config trained (the plain one for the member rows)
    own: str              # its own score


class Demo(NamedTuple):
    name: str
    base: str                                   # the plain config (shipped name)
    methods: tuple                              # ((label, shipped config, own score), ...)
    mc_dropout: Optional[str]                   # None: the single model's dropout; else a config trained per seed
    tta: bool
    scope: str                                  # 'seg' or 'cls'
    columns: tuple                              # ((key template with {own}, header), ...); '%' headers:
    evaluator: Optional[Callable[[str], list]]  # own score -> test_evaluator (None: the config's)
    percent: tuple = ()                         # the keys already in percent (mmseg's mIoU), not scaled


def _sod_evaluator(own: str) -> list:
    return [dict(type='PixelAccuracyMetric'),
            dict(type='PixelCalibrationMetric', n_bins=10, nll_brier=True),
            dict(type='PixelUncertaintyMetric', score='max-prob', prefix='maxprob'),
            dict(type='PixelUncertaintyMetric', score='own', prefix='own'),
            dict(type='OODDetectionMetric', ood_sets=['DTD'], score='max-prob', prefix='maxprob'),
            dict(type='OODDetectionMetric', ood_sets=['DTD'], score='own', prefix='own')]


def _cls_evaluator(own: str) -> list:
    confidences = ('max-prob',) if own == 'max-prob' else ('max-prob', own)
    return [dict(type='SelectivePredictionMetric', confidences=confidences, ood_sets=('mnist',))]


_SEG_RANKING = (('maxprob/{s}/AUROC', 'AUROC max-p'), ('own/{s}/AUROC', 'AUROC own'),
                ('maxprob/{s}/AURC', 'AURC max-p'), ('own/{s}/AURC', 'AURC own'))
DEMOS: dict[str, Demo] = {
    'shapes': Demo('shapes', 'ce_shapes_demo',
                   (('EDL', 'edl_shapes_demo', 'vacuity'), ('DisMax', 'dismax_shapes_demo', 'MMLES')),
                   None, True, 'seg',
                   (('test/mIoU', 'mIoU %'), ('test/ECE', 'ECE'), ('test/NLL', 'NLL'),
                    *((k.format(s='test'), h) for k, h in _SEG_RANKING),
                    ('maxprob/ood/OOD_AUROC_px', 'OOD AUROC max-p'), ('own/ood/OOD_AUROC_px', 'OOD AUROC own')),
                   None, ('test/mIoU',)),
    'sod': Demo('sod', 'bce_sod_demo', (('ASLP', 'aslp_sod_demo', 'max-prob'),), None, True, 'seg',
                (('DUTS-TE/PixelAcc', 'acc %'), ('DUTS-TE/ECE', 'ECE'), ('DUTS-TE/NLL', 'NLL'),
                 *((k.format(s='DUTS-TE'), h) for k, h in _SEG_RANKING),
                 ('maxprob/DTD/OOD_AUROC_px', 'OOD AUROC max-p'), ('own/DTD/OOD_AUROC_px', 'OOD AUROC own')),
                _sod_evaluator),
    'cls': Demo('cls', 'cls/ce_fmnist_demo',
                (('EDL', 'cls/edl_fmnist_demo', 'vacuity'), ('DisMax', 'cls/dismax_fmnist_demo', 'MMLES')),
                'cls/mc_dropout_fmnist_demo', True, 'cls',
                (('selective/accuracy', 'acc'), ('selective/ECE', 'ECE'), ('selective/NLL', 'NLL'),
                 ('selective/AUROC[max-prob]', 'AUROC max-p'), ('selective/AUROC[{own}]', 'AUROC own'),
                 ('selective/AURC[max-prob]', 'AURC max-p'), ('selective/AURC[{own}]', 'AURC own'),
                 ('selective/OOD-AUROC[max-prob]', 'OOD AUROC max-p'),
                 ('selective/OOD-AUROC[{own}]', 'OOD AUROC own')),
                _cls_evaluator),
}
#: The model type of T stochastic passes per front end.
MC_DROPOUT_TYPES = {'seg': 'MCDropoutEncoderDecoder', 'cls': 'MCDropoutImageClassifier'}


def member_seeds(seed: int, members: int) -> list[int]:
    """The seeds of the members of the ensemble of ``seed``: ``seed M .. seed M + M - 1`` (disjoint
    across seeds; the first is the single model's)."""
    return [seed * members + j for j in range(members)]


def rows_of(demo: Demo, members: int, passes: int, methods: Optional[Sequence[str]] = None) -> list[Row]:
    """The rows of the table of ``demo``."""
    rows = [Row('single', 'single', demo.base, 'max-prob'),
            Row(f'ensemble x{members}', 'ensemble', demo.base, MEMBER_OWN_SCORE),
            Row(f'MC dropout T={passes}', 'mc-dropout', demo.mc_dropout or demo.base, MEMBER_OWN_SCORE)]
    if demo.tta:
        rows.append(Row('TTA (flip)', 'tta', demo.base, MEMBER_OWN_SCORE))
    for label, config, own in demo.methods:
        if methods is None or label in methods:
            rows.append(Row(label, 'method', config, own))
    return rows


def wrapper_config(path: str, base: str, evaluator: Optional[list] = None, model: Optional[dict] = None) -> str:
    """Write a config at ``path`` that is ``base`` (an absolute config path) with ``test_evaluator``
    replaced and ``model`` merged in; return ``path``."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    lines = [f'_base_ = [{osp.abspath(base)!r}]']
    if evaluator is not None:
        lines.append(f'test_evaluator = {evaluator!r}')
    if model is not None:
        lines.append(f'model = {model!r}')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def _train_dir(root: str, seed: int, config: str) -> str:
    return osp.join(root, f'seed{seed}', config_name(config))


def _test(stages: Stages, env: dict, label: str, work_dir: str, config: str, checkpoint: Optional[str],
          extra: Sequence[str] = (), cancel=None) -> dict:
    out = osp.join(work_dir, METRICS_FILE)
    if not osp.isfile(out):
        cmd = uqseg_command('test', config, *([checkpoint] if checkpoint else []), '--work-dir', work_dir, *extra)
        stages.run(f'test {label}', cmd, osp.join(work_dir, 'test.log'), env=env, cancel=cancel)
    with open(out) as f:
        return json.load(f)


def evaluate(demo: Demo, rows: Sequence[Row], seeds: Sequence[int], members: int, passes: int, root: str,
             jobs: int = 1, stages: Optional[Stages] = None) -> dict:
    """Train what the rows need (finished runs reused) and test every row once per seed;
    ``{row label: {seed: test metrics}}``."""
    stages = stages or Stages()
    env = job_env(jobs)
    trainings = {}  # (config, seed) -> work dir
    for k in seeds:
        for row in rows:
            if row.kind in ('single', 'tta') or (row.kind == 'mc-dropout' and demo.mc_dropout is None):
                trainings[(demo.base, member_seeds(k, members)[0])] = None
            elif row.kind == 'ensemble':
                trainings.update({(demo.base, s): None for s in member_seeds(k, members)})
            else:
                trainings[(row.config, k)] = None
    pairs = list(trainings)

    def train(config, seed):
        return lambda cancel: train_and_test(find_config(config), _train_dir(root, seed, config),
                                             [f'randomness.seed={seed}'], reuse=True, stages=stages, env=env,
                                             cancel=cancel, label=f'{config_name(config)} (seed {seed})')
    run_jobs([train(c, s) for c, s in pairs], jobs, stages)

    def ckpt(config, seed):
        return last_checkpoint(_train_dir(root, seed, config))

    def test(row, k):
        work = osp.join(root, 'eval', row.label.replace(' ', '_').replace('=', ''), f'seed{k}')
        evaluator = demo.evaluator(row.own) if demo.evaluator else None
        label = f'{row.label} (seed {k})'
        if row.kind == 'ensemble':
            seeds_k = member_seeds(k, members)
            os.makedirs(work, exist_ok=True)
            ens = write_ensemble_config(demo.base, [ckpt(demo.base, s) for s in seeds_k],
                                        osp.join(work, 'ensemble.py'), seeds=seeds_k)
            cfg = wrapper_config(osp.join(work, 'config.py'), ens, evaluator)
            return lambda cancel: _test(stages, env, label, work, cfg, None, cancel=cancel)
        if row.kind == 'mc-dropout':
            seed = k if demo.mc_dropout else member_seeds(k, members)[0]
            model = dict(type=MC_DROPOUT_TYPES[demo.scope], passes=passes, seed=k)
            cfg = wrapper_config(osp.join(work, 'config.py'), find_config(row.config), evaluator, model)
            return lambda cancel: _test(stages, env, label, work, cfg, ckpt(row.config, seed), cancel=cancel)
        seed = k if row.kind == 'method' else member_seeds(k, members)[0]
        cfg = wrapper_config(osp.join(work, 'config.py'), find_config(row.config), evaluator)
        extra = ('--tta',) if row.kind == 'tta' else ()
        return lambda cancel: _test(stages, env, label, work, cfg, ckpt(row.config, seed), extra, cancel=cancel)

    cells = [(row, k) for row in rows for k in seeds]
    results = run_jobs([test(row, k) for row, k in cells], jobs, stages)
    out: dict = {}
    for (row, k), metrics in zip(cells, results):
        out.setdefault(row.label, {})[k] = metrics
    return out


def _cell(v: np.ndarray, digits: int) -> str:
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return 'n/a'
    if len(v) == 1:
        return f'{v[0]:.{digits}f}'
    return f'{np.mean(v):.{digits}f} +- {np.std(v, ddof=1):.{digits}f}'


def column_values(demo: Demo, row: Row, runs: dict, key: str) -> np.ndarray:
    """The values of one column (``key`` with ``{own}`` filled in) over the seeds of ``runs``."""
    k = key.format(own=row.own)
    return np.array([runs[s].get(k, np.nan) for s in sorted(runs)], dtype=float)


def row_table(demo: Demo, rows: Sequence[Row], results: dict) -> tuple[str, dict]:
    """The markdown table (mean +- std over the seeds) and its numbers ``{row: {header: [values]}}``."""
    head = '| method | own score | ' + ' | '.join(h for _, h in demo.columns) + ' |'
    lines = [head, '|' + '---|' * (2 + len(demo.columns))]
    data: dict = {}
    for row in rows:
        cells = []
        for key, header in demo.columns:
            v = column_values(demo, row, results[row.label], key)
            data.setdefault(row.label, {})[header] = v.tolist()
            scale = 100 if '%' in header and key not in demo.percent else 1
            cells.append(_cell(v * scale, 2 if '%' in header else 4))
        lines.append(f'| {row.label} | {row.own} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines), data


def _mean(data: dict, row: str, header: str) -> float:
    v = np.array(data.get(row, {}).get(header, [np.nan]), dtype=float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float('nan')


def findings(rows: Sequence[Row], data: dict) -> list[str]:
    """The well-known findings, each checked on the means: ensembles better calibrated (ECE, NLL)
    and better at OOD than one model; MC dropout between them; mutual information better than
    max-prob at OOD."""
    labels = {r.kind: r.label for r in rows}
    single, ens, mc = labels['single'], labels['ensemble'], labels['mc-dropout']
    out = []

    def verdict(text: str, holds: bool, numbers: str) -> None:
        out.append(f'{"holds" if holds else "does not hold"}: {text} ({numbers})')

    for header, lower in (('ECE', True), ('NLL', True), ('OOD AUROC max-p', False)):
        a, b, m = _mean(data, ens, header), _mean(data, single, header), _mean(data, mc, header)
        if np.isnan(a) or np.isnan(b):
            continue
        better = a < b if lower else a > b
        verdict(f'{ens} {"lower" if lower else "higher"} {header} than {single}', better, f'{a:.4f} vs {b:.4f}')
        if not np.isnan(m):
            between = min(a, b) <= m <= max(a, b)
            verdict(f'{mc} between them in {header}', between, f'{m:.4f}')
    for label in (ens, mc, labels.get('tta')):
        if label is None:
            continue
        a, b = _mean(data, label, 'OOD AUROC own'), _mean(data, label, 'OOD AUROC max-p')
        if not (np.isnan(a) or np.isnan(b)):
            verdict(f'{label}: mutual information higher OOD AUROC than max-prob', a > b, f'{a:.4f} vs {b:.4f}')
    return out


def compare_baselines(demo_name: str, seeds: Sequence[int], members: int = 5, passes: int = 10,
                      work_dir: str = 'work_dirs/baselines', methods: Optional[Sequence[str]] = None,
                      jobs: int = 1) -> dict:
    """Run the comparison on one demo (module docstring); ``{'table', 'data', 'findings', 'results'}``."""
    if demo_name not in DEMOS:
        raise ValueError(f'--demo {demo_name!r}: the demos are {tuple(DEMOS)}')
    if members < 2:
        raise ValueError(f'--members {members}: an ensemble needs at least 2')
    if passes < 2:
        raise ValueError(f'--passes {passes}: MC dropout needs at least 2')
    if len(set(seeds)) < len(seeds) or any(s < 0 for s in seeds):
        raise ValueError(f'--seeds {" ".join(map(str, seeds))}: give distinct seeds >= 0')
    demo = DEMOS[demo_name]
    known = [label for label, _, _ in demo.methods]
    if methods is not None and not set(methods) <= set(known):
        raise ValueError(f'--methods {" ".join(methods)}: the {demo_name} demo has {known}')
    read_config(demo.base)  # a missing extra (mmpretrain for cls) stops here, before any training
    root = osp.join(work_dir, demo_name)
    rows = rows_of(demo, members, passes, methods)
    print(f'uqseg compare-baselines: the {demo_name} demo, seeds {list(seeds)}, {members} members, {passes} '
          f'passes; {len(rows)} rows; runs in {root}', flush=True)
    results = evaluate(demo, rows, seeds, members, passes, root, jobs)
    md, data = row_table(demo, rows, results)
    found = findings(rows, data)
    write_report(root, 'baselines', md + '\n\n' + '\n'.join(f'- {f}' for f in found), data)
    print(f'\n{demo_name} demo, seeds {list(seeds)} (mean +- std; own score: mutual information for the rows of '
          f'several members; {osp.join(root, "baselines.md")})\n{md}\n\n' + '\n'.join(found), flush=True)
    return dict(table=md, data=data, findings=found, results=results)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--demo', required=True, choices=tuple(DEMOS), help='which demo')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2], help='seeds (default 0 1 2)')
    parser.add_argument('--members', type=int, default=5, help='members per ensemble (default 5)')
    parser.add_argument('--passes', type=int, default=10, help='MC-dropout passes T (default 10)')
    parser.add_argument('--methods', nargs='+', help="the seed papers' methods to include (default: all of the demo)")
    parser.add_argument('--work-dir', default='work_dirs/baselines', help='folder of the runs')
    parser.add_argument('--jobs', type=int, default=1, help='runs at once (default 1)')


def run(args: argparse.Namespace) -> dict:
    if args.jobs < 1 or args.jobs > max(1, usable_cpus()) * 4:
        raise ValueError(f'--jobs {args.jobs}: give 1 .. {max(1, usable_cpus()) * 4}')
    return compare_baselines(args.demo, args.seeds, args.members, args.passes, args.work_dir, args.methods,
                             args.jobs)
