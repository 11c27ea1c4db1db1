"""The heads comparison: train and test CE, EDL, TEDL, DisMax and IsoMax+ on the multiclass shapes
demo over several seeds, and print one table of accuracy, calibration, misclassification
detection (each head's own score and max-prob) and OOD pixel detection, mean +- std over seeds.

    python tools/compare_heads.py [--seeds 0 1 2] [--work-dir work_dirs/heads] [--configs ...]
    make compare-heads

Runs whose ``test_metrics.json`` exists are reused (an interrupted comparison resumes; two
processes on different ``--seeds`` can share a work dir). Each training and test is a ``uqseg
train`` / ``uqseg test`` subprocess with its log in its work dir, one line per stage
(``uqseg.cli.demo.seed_runs``); ``--jobs N`` runs N at once. The table goes to
``<work-dir>/heads.md`` and the numbers to ``<work-dir>/heads.json``. Training one config takes
about 2 minutes on one CPU thread (``OMP_NUM_THREADS=1``; 3.5 when two runs share two cores).
"""
import argparse
import os
import os.path as osp

import numpy as np

from uqseg.cli.demo import seed_runs, write_report
from uqseg.seg.datasets.shapes_demo import make_shapes_demo
from uqseg.seg.datasets.stamped import write_stamped

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

DEFAULT_CONFIGS = ['configs/ce_shapes_demo.py', 'configs/edl_shapes_demo.py', 'configs/tedl_shapes_demo.py',
                   'configs/dismax_shapes_demo.py', 'configs/isomax_shapes_demo.py']
OWN = {'ce': 'max-prob', 'edl': 'vacuity', 'tedl': 'vacuity', 'dismax': 'MMLES', 'isomax': 'MDS'}
#: (key pattern, header, scale): {s} is the set
SET_COLUMNS = [('{s}/mIoU', 'mIoU %', 1.0), ('{s}/aAcc', 'acc %', 1.0), ('{s}/ECE', 'ECE', 1.0),
               ('{s}/NLL', 'NLL', 1.0), ('own/{s}/AUROC', 'AUROC own', 1.0), ('maxprob/{s}/AUROC', 'AUROC max-p', 1.0),
               ('own/{s}/AURC', 'AURC own', 1.0), ('maxprob/{s}/AURC', 'AURC max-p', 1.0)]
OOD_COLUMNS = [('own/ood/OOD_AUROC_px', 'OOD AUROC own', 1.0), ('maxprob/ood/OOD_AUROC_px', 'OOD AUROC max-p', 1.0),
               ('own/ood/OOD_FPR@95TPR_px', 'FPR95 own', 1.0), ('maxprob/ood/OOD_FPR@95TPR_px', 'FPR95 max-p', 1.0)]


def _cell(values: np.ndarray, digits: int) -> str:
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    return f'{np.mean(values):.{digits}f} +- {np.std(values, ddof=1):.{digits}f}'


def tables(runs: dict, seeds: list, sets=('test', 'shift')) -> tuple[str, dict]:
    """Markdown tables (one per set, one for OOD) and the raw numbers per config and key."""
    data: dict = {}

    def values(name, key):
        v = np.array([runs[name][sd].get(key, np.nan) for sd in seeds], dtype=float)
        data.setdefault(name, {})[key] = v.tolist()
        return v

    out = []
    for s in sets:
        head = f'| {s} | own score | ' + ' | '.join(h for _, h, _ in SET_COLUMNS) + ' |'
        out += [head, '|' + '---|' * (2 + len(SET_COLUMNS))]
        for name in runs:
            cells = [_cell(values(name, k.format(s=s)) * sc, 2 if '%' in h else 4) for k, h, sc in SET_COLUMNS]
            out.append(f'| {name} | {OWN.get(name.split("_")[0], "own")} | ' + ' | '.join(cells) + ' |')
        out.append('')
    head = '| ood (pixels of an unseen class) | own score | ' + ' | '.join(h for _, h, _ in OOD_COLUMNS) + ' |'
    out += [head, '|' + '---|' * (2 + len(OOD_COLUMNS))]
    for name in runs:
        cells = [_cell(values(name, k) * sc, 4) for k, h, sc in OOD_COLUMNS]
        out.append(f'| {name} | {OWN.get(name.split("_")[0], "own")} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(out), data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/heads')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed to train.py and test.py')
    parser.add_argument('--jobs', type=int, default=1, help='trainings at once (default 1)')
    parser.add_argument('--no-table', action='store_true', help='train and test only (e.g. a second process)')
    args = parser.parse_args(argv)
    write_stamped('data/demo_shapes', make_shapes_demo)
    runs = seed_runs(args.configs, args.seeds, args.work_dir, args.cfg_options, jobs=args.jobs)
    if args.no_table:
        return
    md, data = tables(runs, args.seeds)
    write_report(args.work_dir, 'heads', md, data)
    print(f'\nSeeds {args.seeds}: mean +- std over seeds; "own" is each head\'s own uncertainty score')
    print(md)


if __name__ == '__main__':
    os.chdir(ROOT)
    main()
