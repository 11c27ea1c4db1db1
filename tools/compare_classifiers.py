"""The classification comparison on the Fashion-MNIST demo (MNIST digits as the OOD set): every
method trained, its test outputs dumped, all of them scored at once by ``uqseg eval-selective``
(one ranked table, as Galil et al. scored 523 ImageNet models), then mean +- std over seeds per
method.

    python tools/compare_classifiers.py [--seeds 0 1 2] [--extra-seeds 0] [--work-dir work_dirs/cls_demo]
    make compare-classifiers

Rows: cross-entropy (``ce``), ``ce`` + temperature scaling (T fitted on the validation split by
``uqseg calibrate``, applied by ``TemperatureScaledImageClassifier``), EDL, TEDL,
DisMax (FPR mosaics) and DisMax + temperature scaling (its post-hoc step in the paper),
knowledge distillation (``kd``: the ``ce`` model of the same seed as teacher, no augmentation),
offline LDL (the same teacher, Mixup / CutMix) and online LDL (EMA teacher, Mixup / CutMix) over
``--seeds`` (the headline rows); label smoothing, cross-entropy with Mixup / CutMix (the
augmentation control) and IsoMax+ over ``--extra-seeds``.

Per run: ``uqseg train`` (``randomness.seed``), ``uqseg dump-outputs`` on the test loop's
sets (the OOD set's outputs as ``ood_logits``) into ``<work-dir>/outputs/<method>_s<seed>.npz``.
Then ``uqseg eval-selective`` on every file (``--confidence own``: each model's own score, and
max-prob; ``--fit-temperature``: Galil's check of how temperature scaling moves AUROC and the
ranking, T fitted on a seeded 10 % of each test file, on the files of logits: not EDL's log alpha,
``uqseg.core.temperature_kinds``), its CSV and plots in ``<work-dir>/eval``,
and the per-method table over seeds: ``<work-dir>/classifiers.md`` / ``classifiers.json``.
Finished steps are reused (an interrupted comparison resumes).

Data: ``uqseg make-demo-data --only cls`` runs first when ``data/cls_data.json`` is missing. Without the
Debian package it writes the embedded fallback (MNIST's 5,000 digits as the in-distribution set,
scikit-learn's digits as OOD); the comparison then runs on it (configs written under
``<work-dir>/configs`` override the data roots, class names, split sizes and the OOD set) and says
so: its numbers are not the Fashion-MNIST ones.
"""
import argparse
import csv
import json
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np

from uqseg.cli.demo import write_report
from uqseg.core.output_files import load_outputs
from uqseg.core.temperature_kinds import TEMPERATURE_KINDS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CONFIGS = 'configs/cls/{}_fmnist_demo.py'
HEADLINE = ('ce', 'ce+TS', 'edl', 'tedl', 'dismax', 'dismax+TS', 'kd', 'ldl_offline', 'ldl_online')
EXTRA = ('ls', 'ce_mixup', 'isomax')
TEACHER = {'kd': 'ce', 'ldl_offline': 'ce'}
# (CSV key, column label, digits); '{c}' is the row's confidence
COLUMNS = [('accuracy', 'acc %', 2, 100.0), ('ECE', 'ECE', 4, 1.0), ('NLL', 'NLL', 3, 1.0),
           ('AURC[{c}]', 'AURC', 4, 1.0), ('E-AURC[{c}]', 'E-AURC', 4, 1.0), ('AUROC[{c}]', 'AUROC', 4, 1.0),
           ('cov@acc0.99[{c}]', 'cov@99%', 3, 1.0), ('OOD-AUROC[{c}]', 'OOD AUROC', 4, 1.0),
           ('OOD-FPR95[{c}]', 'OOD FPR95', 4, 1.0)]


def run(cmd: list) -> None:
    """Run ``cmd`` from the repository root, echoed first; a failing command stops the comparison."""
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='seeds of the headline rows')
    ap.add_argument('--extra-seeds', type=int, nargs='*', default=[0], help='seeds of the other rows')
    ap.add_argument('--methods', nargs='+', help='only these rows (default: all)')
    ap.add_argument('--work-dir', default='work_dirs/cls_demo')
    return ap.parse_args(argv)


DATA_JSON = 'data/cls_data.json'


FALLBACK_OVERRIDES = """
# the embedded fallback data (uqseg make-demo-data --only cls without the Debian package): {root}
_classes = {classes!r}
_meta = dict(classes=_classes)
_pipeline = [dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'set_name'))]
train_dataloader = dict(dataset=dict(data_root={root!r}, num_val={n_val}, num_train=None, metainfo=_meta))
val_dataloader = dict(dataset=dict(data_root={root!r}, num_val={n_val}, metainfo=_meta))
test_dataloader = dict(dataset=dict(datasets=[
    dict(type='FashionMNISTSplit', data_root={root!r}, split='test', metainfo=_meta, pipeline=_pipeline),
    dict(type={ood_type!r}, set_name={ood_set!r}, pipeline=_pipeline)]))
test_evaluator = [dict(type='SelectivePredictionMetric', ood_sets=({ood_set!r}, ))]
"""


def read_data_info(py: str, data_json: str = DATA_JSON) -> dict:
    """``data/cls_data.json`` (``uqseg make-demo-data --only cls`` writes it first if missing)."""
    path = osp.join(ROOT, data_json)
    if not osp.isfile(path):
        run([py, '-m', 'uqseg', 'make-demo-data', '--only', 'cls', '--json', data_json])
    with open(path) as f:
        info = json.load(f)
    if info['source'] == 'fallback':
        print(f"NOTE: the Debian package dataset-fashion-mnist is not installed: the comparison runs on the embedded "
              f"fallback ({info['data_root']}: MNIST digits, OOD {info['ood']['type']}); its numbers are not the "
              'Fashion-MNIST ones', flush=True)
    return info


def config_of(method: str, info: dict, work_dir: str) -> str:
    """The config of ``method``: the repository's for Fashion-MNIST; for the fallback data a
    config written under ``<work_dir>/configs`` on it, with the fallback's roots, classes, split
    sizes and OOD set."""
    config = CONFIGS.format(method)
    if info['source'] != 'fallback':
        return config
    path = osp.join(work_dir, 'configs', osp.basename(config))
    os.makedirs(osp.join(ROOT, osp.dirname(path)), exist_ok=True)
    text = f"_base_ = [{osp.join(ROOT, config)!r}]\n" + FALLBACK_OVERRIDES.format(
        root=info['data_root'], classes=info['classes'], n_val=max(1, info['num_train_images'] // 8),
        ood_type=info['ood']['type'], ood_set=info['ood']['set_name'])
    with open(osp.join(ROOT, path), 'w') as f:
        f.write(text)
    return path


def _last_checkpoint(work_dir: str) -> str:
    with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train(py: str, method: str, seed: int, work_dir: str, info: dict) -> str:
    """Train ``method`` with ``seed`` (its teacher first, for kd / offline LDL); its checkpoint."""
    run_dir = osp.join(work_dir, f'seed{seed}', method)
    if not osp.isfile(osp.join(ROOT, run_dir, 'last_checkpoint')):
        opts = [f'randomness.seed={seed}']
        if method in TEACHER:
            opts.append(f'custom_hooks.0.checkpoint={train(py, TEACHER[method], seed, work_dir, info)}')
        start = time.time()
        run([py, '-m', 'uqseg', 'train', config_of(method, info, work_dir), '--work-dir', run_dir,
             '--cfg-options', *opts])
        print(f'{method} seed {seed}: trained in {time.time() - start:.0f} s', flush=True)
    return _last_checkpoint(run_dir)


def dump(py: str, method: str, seed: int, work_dir: str, info: dict) -> str:
    """The test outputs of ``method`` / ``seed`` (``ce+TS``: calibrated on the validation split first)."""
    out = osp.join(work_dir, 'outputs', f'{method}_s{seed}.npz')
    if osp.isfile(osp.join(ROOT, out)):
        return out
    base = method.split('+')[0]
    ckpt = train(py, base, seed, work_dir, info)
    config = config_of(base, info, work_dir)
    extra = []
    if method.endswith('+TS'):
        calibrated = osp.join(work_dir, f'seed{seed}', method, 'calibrated.pth')
        if not osp.isfile(osp.join(ROOT, calibrated)):
            run([py, '-m', 'uqseg', 'calibrate', config, ckpt, '--out', calibrated])
        ckpt = calibrated
        extra = ['--apply-temperature', '--cfg-options', 'model.type=TemperatureScaledImageClassifier']
    run([py, '-m', 'uqseg', 'dump-outputs', config, ckpt, '--out', out, '--model-name', f'{method}_s{seed}', *extra])
    return out


def read_csv(path: str) -> list[dict]:
    with open(osp.join(ROOT, path)) as f:
        return list(csv.DictReader(f))


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float('nan')


def method_table(rows: list[dict], methods: list, seeds_of: dict) -> tuple[str, dict]:
    """Markdown table, one row per method and confidence: mean +- std over its seeds."""
    by_model = {r['model']: r for r in rows}
    head = ('| method | seeds | confidence | ' + ' | '.join(c[1] for c in COLUMNS) + ' |\n|'
            + '---|' * (3 + len(COLUMNS)))
    lines, data = [], {}
    for method in methods:
        seeds = seeds_of[method]
        first = by_model.get(f'{method}_s{seeds[0]}')
        if first is None:
            continue
        confs = ['max-prob'] + [k[5:-1] for k, v in first.items()
                                if k.startswith('AURC[') and k != 'AURC[max-prob]' and v not in ('', None)]
        for conf in confs:
            cells = []
            for key, _, digits, scale in COLUMNS:
                k = key.format(c=conf)
                v = np.array([_num(by_model.get(f'{method}_s{s}', {}).get(k)) * scale for s in seeds])
                data[f'{method}/{k}'] = v.tolist()
                if np.all(np.isnan(v)):
                    cells.append('-')
                elif len(v) > 1:
                    cells.append(f'{np.nanmean(v):.{digits}f} +- {np.nanstd(v, ddof=1):.{digits}f}')
                else:
                    cells.append(f'{v[0]:.{digits}f}')
            lines.append(f'| {method} | {len(seeds)} | {conf} | ' + ' | '.join(cells) + ' |')
    return head + '\n' + '\n'.join(lines), data


def main(argv=None):
    args = parse_args(argv)
    py = sys.executable
    methods = [m for m in HEADLINE + EXTRA if args.methods is None or m in args.methods]
    seeds_of = {m: (args.seeds if m in HEADLINE else args.extra_seeds) for m in methods}
    seeds_of = {m: s for m, s in seeds_of.items() if s}
    info = read_data_info(py)
    files = [dump(py, m, s, args.work_dir, info) for m, seeds in seeds_of.items() for s in seeds]
    eval_dir = osp.join(args.work_dir, 'eval')
    os.makedirs(osp.join(ROOT, eval_dir), exist_ok=True)
    csv_path = osp.join(eval_dir, 'selective.csv')
    run([py, '-m', 'uqseg', 'eval-selective', *files, '--confidence', 'max-prob', 'own', '--csv', csv_path,
         '--plots', eval_dir])
    ts_csv = osp.join(eval_dir, 'selective_ts.csv')
    # temperature scaling applies to logits only (uqseg.core.temperature_kinds): EDL's log alpha files are left out
    scalable = [f for f in files if '+TS' not in f
                and load_outputs(osp.join(ROOT, f), check_values=False).kind in TEMPERATURE_KINDS]
    run([py, '-m', 'uqseg', 'eval-selective', *scalable, '--fit-temperature', '--csv', ts_csv,
         '--plots', osp.join(eval_dir, 'ts')])
    md, data = method_table(read_csv(csv_path), list(seeds_of), seeds_of)
    print(md)
    write_report(osp.join(ROOT, args.work_dir), 'classifiers', md, data)
    with open(osp.join(ROOT, args.work_dir, 'classifiers_files.json'), 'w') as f:
        json.dump(files, f, indent=1)


if __name__ == '__main__':
    main()
