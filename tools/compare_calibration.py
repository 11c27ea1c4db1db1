"""The calibration comparison: the plain model, the plain model + temperature scaling (fitted on
the validation split), online LDL, offline LDL (the plain model of the same seed as teacher) and,
on the SOD demo, ASLP (on the shapes demo also the plain model with LDL's CutMix and no teacher,
the control for the augmentation), trained and tested over several seeds, in one table of pooled pixel
accuracy, ECE and NLL (and the SOD scores), mean +- std over seeds.

    python tools/compare_calibration.py [--demo shapes|sod] [--seeds 0 1 2] [--work-dir DIR]
    make compare-calibration

Work dirs ``<work-dir>/seed<N>/<config>``; finished runs are reused (an interrupted comparison
resumes); each training, test and fit is a ``uqseg`` subprocess with its log in its work dir,
one line per stage. The temperature-scaling row is ``uqseg calibrate`` on the plain run's checkpoint
and ``uqseg test`` on the checkpoint it writes; its validation-split ECE / NLL before and after
come from the fit's record. Tables: ``<work-dir>/calibration.md``, numbers ``calibration.json``.
"""
import argparse
import json
import os
import os.path as osp

import numpy as np

from uqseg.cli.demo import (
    Stages,
    config_name,
    last_checkpoint,
    train_and_test,
    uqseg_command,
    write_report,
)
from uqseg.seg.datasets.demo_data import make_demo_data
from uqseg.seg.datasets.shapes_demo import make_shapes_demo
from uqseg.seg.datasets.stamped import write_stamped

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

DEMOS = {
    'shapes': dict(data=('data/demo_shapes', make_shapes_demo), n_bins=15, plain='configs/ce_shapes_demo.py',
                   cutmix='configs/ce_cutmix_shapes_demo.py', online='configs/ldl_online_shapes_demo.py',
                   offline='configs/ldl_offline_shapes_demo.py', aslp=None, sets=('test', 'shift'),
                   columns=[('{s}/aAcc', 'acc %', 1.0), ('{s}/mIoU', 'mIoU %', 1.0), ('{s}/ECE', 'ECE', 1.0),
                            ('{s}/NLL', 'NLL', 1.0), ('{s}/Brier', 'Brier', 1.0)]),
    'sod': dict(data=('data/demo', make_demo_data), n_bins=10, plain='configs/bce_sod_demo.py', cutmix=None,
                online='configs/ldl_online_sod_demo.py',
                offline='configs/ldl_offline_sod_demo.py', aslp='configs/aslp_sod_demo.py', sets=('DUTS-TE', 'ECSSD'),
                columns=[('{s}/PixelAcc', 'acc %', 100.0), ('{s}/ECE', 'ECE', 1.0), ('{s}/NLL', 'NLL', 1.0),
                         ('{s}/MAE', 'MAE', 1.0), ('{s}/maxF', 'max-F', 1.0), ('{s}/S', 'S', 1.0)]),
}


def calibrated_run(config: str, plain_dir: str, work_dir: str, n_bins: int) -> tuple[dict, dict]:
    """``uqseg calibrate`` on the plain run's last checkpoint (its report in the test evaluator's
    ``n_bins``), then ``uqseg test`` on the calibrated checkpoint: (test metrics, the fit's record)."""
    out = osp.join(work_dir, 'test_metrics.json')
    ckpt = osp.join(work_dir, 'calibrated.pth')
    if not osp.isfile(out):
        stages = Stages()
        name = f'{config_name(config)} + TS'
        stages.run(f'calibrate {name}', uqseg_command('calibrate', config, last_checkpoint(plain_dir), '--out', ckpt,
                                                      '--n-bins', str(n_bins)), osp.join(work_dir, 'calibrate.log'))
        stages.run(f'test {name}', uqseg_command('test', config, ckpt, '--work-dir', work_dir),
                   osp.join(work_dir, 'test.log'))
    with open(osp.join(work_dir, 'calibrated.json')) as f:
        record = json.load(f)
    with open(out) as f:
        return json.load(f), record


def seed_results(demo: dict, seed: int, work_dir: str) -> tuple[dict, dict]:
    """``{row name: test metrics}`` and the temperature fit's record for one seed."""
    base = osp.join(work_dir, f'seed{seed}')
    opts = [f'randomness.seed={seed}']

    def trained(config, extra=()):
        name = config_name(config)
        return train_and_test(config, osp.join(base, name), [*opts, *extra], reuse=True, label=f'{name} (seed {seed})')

    plain_dir = osp.join(base, config_name(demo['plain']))
    rows = {'plain': trained(demo['plain'])}
    rows['plain + TS'], record = calibrated_run(demo['plain'], plain_dir, osp.join(base, 'temperature_scaling'),
                                                demo['n_bins'])
    if demo['cutmix']:  # the control: the augmentation without the teacher
        rows['plain + CutMix'] = trained(demo['cutmix'])
    rows['online LDL'] = trained(demo['online'])
    rows['offline LDL'] = trained(demo['offline'], [f'custom_hooks.0.checkpoint={last_checkpoint(plain_dir)}'])
    if demo['aslp']:
        rows['ASLP'] = trained(demo['aslp'])
    return rows, record


def _cell(v: np.ndarray, digits: int) -> str:
    return f'{v[0]:.{digits}f}' if len(v) == 1 else f'{np.mean(v):.{digits}f} +- {np.std(v, ddof=1):.{digits}f}'


def tables(results: dict, records: dict, demo: dict, seeds: list) -> tuple[str, dict]:
    data: dict = {}
    out = []
    for s in demo['sets']:
        head = f'| {s} | ' + ' | '.join(h for _, h, _ in demo['columns']) + ' |'
        out += [head, '|' + '---|' * (1 + len(demo['columns']))]
        for row in results[seeds[0]]:
            cells = []
            for key, h, scale in demo['columns']:
                k = key.format(s=s)
                v = np.array([results[sd][row].get(k, np.nan) for sd in seeds], dtype=float) * scale
                data.setdefault(row, {})[k] = v.tolist()
                cells.append(_cell(v, 2 if scale != 1.0 or '%' in h else 4))
            out.append(f'| {row} | ' + ' | '.join(cells) + ' |')
        out.append('')
    # how much temperature scaling lowers ECE / NLL: on the fitting (validation) split and on each test set
    out += ['| temperature scaling | T | split | ECE before | ECE after | NLL before | NLL after |',
            '|---|---|---|---|---|---|---|']
    t = np.array([records[sd]['temperature'] for sd in seeds], dtype=float)
    data['temperature'] = t.tolist()
    for split in ('val (fit)',) + tuple(demo['sets']):
        if split == 'val (fit)':
            vals = {m: (np.array([records[sd]['before'][m] for sd in seeds]),
                        np.array([records[sd]['after'][m] for sd in seeds])) for m in ('ECE', 'NLL')}
        else:
            vals = {m: (np.array([results[sd]['plain'][f'{split}/{m}'] for sd in seeds]),
                        np.array([results[sd]['plain + TS'][f'{split}/{m}'] for sd in seeds])) for m in ('ECE', 'NLL')}
        data.setdefault('ts_effect', {})[split] = {m: [b.tolist(), a.tolist()] for m, (b, a) in vals.items()}
        cells = [_cell(x, 4) for m in ('ECE', 'NLL') for x in vals[m]]
        out.append(f'| | {_cell(t, 3)} | {split} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(out), data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--demo', choices=sorted(DEMOS), default='shapes')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-dir', help='default work_dirs/calibration_<demo>')
    parser.add_argument('--no-table', action='store_true', help='train and test only (e.g. a second process)')
    args = parser.parse_args(argv)
    demo = DEMOS[args.demo]
    work_dir = args.work_dir or f'work_dirs/calibration_{args.demo}'
    write_stamped(*demo['data'])
    results, records = {}, {}
    for seed in args.seeds:
        results[seed], records[seed] = seed_results(demo, seed, work_dir)
    if args.no_table:
        return
    md, data = tables(results, records, demo, args.seeds)
    write_report(work_dir, 'calibration', md, data)
    print(f'\n{args.demo} demo, seeds {args.seeds}: mean +- std over seeds (pooled over the pixels of each set)')
    print(md)


if __name__ == '__main__':
    os.chdir(ROOT)
    main()
