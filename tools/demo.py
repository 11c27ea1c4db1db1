"""The demo: make the embedded data if missing, train each demo config on it, test, and print
the calibration and SOD scores per test set side by side.

    python tools/demo.py [--configs configs/bce_sod_demo.py ...] [--work-dir work_dirs/demo]
    python tools/demo.py --seeds 0 1 2 3 4 [--configs ...]     # the seed study

With ``--seeds`` every config is trained and tested once per seed (``randomness.seed``, work dirs
``<work-dir>/seed<N>/<config>``; runs whose ``test_metrics.json`` exists are reused) and the table
gives, per set and score, the mean and standard deviation over the seeds and, for every config
but the first (the baseline), the paired difference to the baseline per seed (mean, standard
deviation, and how many seeds it is negative in). Written to ``<work-dir>/seeds.md`` and
``seeds.json``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
COLUMNS = [('ECE', 'ECE'), ('OE', 'OE'), ('MAE', 'MAE'), ('maxF', 'max-F'), ('S', 'S'), ('meanE', 'E')]
DEFAULT_CONFIGS = ['configs/bce_sod_demo.py', 'configs/aslp_sod_demo.py']


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def table(results: dict) -> str:
    sets = []
    for metrics in results.values():
        for key in metrics:
            name = key.rsplit('/', 1)[0]
            if name not in sets:
                sets.append(name)
    width = max(len(c) for c in results) + 2
    head = f'{"set":<10} {"method":<{width}}' + ''.join(f'{label:>8}' for _, label in COLUMNS)
    lines = [head, '-' * len(head)]
    for name in sets:
        for cfg, metrics in results.items():
            vals = ''.join(f'{metrics.get(f"{name}/{key}", float("nan")):>8.4f}' for key, _ in COLUMNS)
            lines.append(f'{name:<10} {cfg:<{width}}{vals}')
    return '\n'.join(lines)


def train_and_test(py: str, config: str, work_dir: str, extra: list, reuse: bool = False) -> dict:
    """Train ``config`` into ``work_dir``, test its last checkpoint, return the test metrics (with
    ``reuse``, a finished run's ``test_metrics.json`` is taken instead: the seed study resumes)."""
    out = osp.join(ROOT, work_dir, 'test_metrics.json')
    if not (reuse and osp.isfile(out)):
        start = time.time()
        run([py, 'tools/train.py', config, '--work-dir', work_dir, *extra])
        print(f'{config}: trained in {time.time() - start:.0f} s', flush=True)
        with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        run([py, 'tools/test.py', config, ckpt, '--work-dir', work_dir, *extra])
    with open(out) as f:
        return json.load(f)


def seed_runs(py: str, configs: list, seeds: list, work_dir: str, cfg_options: list) -> dict:
    """Train and test every config once per seed (``<work_dir>/seed<N>/<config>``, finished runs
    reused); ``{config name: {seed: test metrics}}``."""
    runs: dict = {}
    for seed in seeds:
        for config in configs:
            name = osp.splitext(osp.basename(config))[0]
            opts = ['--cfg-options', *cfg_options, f'randomness.seed={seed}']
            runs.setdefault(name, {})[seed] = train_and_test(py, config, osp.join(work_dir, f'seed{seed}', name), opts,
                                                             reuse=True)
    return runs


def write_report(work_dir: str, stem: str, md: str, data: dict) -> None:
    """``<work_dir>/<stem>.md`` (the table) and ``<stem>.json`` (its numbers)."""
    os.makedirs(osp.join(ROOT, work_dir), exist_ok=True)
    with open(osp.join(ROOT, work_dir, f'{stem}.md'), 'w') as f:
        f.write(md + '\n')
    with open(osp.join(ROOT, work_dir, f'{stem}.json'), 'w') as f:
        json.dump(data, f, indent=1)


def seed_table(runs: dict, seeds: list) -> tuple[str, dict]:
    """Markdown table of mean +- std over seeds and paired differences to the first config."""
    import numpy as np
    names = list(runs)
    base = names[0]
    sets = []
    for key in runs[base][seeds[0]]:
        s = key.rsplit('/', 1)[0]
        if s not in sets:
            sets.append(s)
    rows, data = [], {}
    head = ('| set | method | ' + ' | '.join(label for _, label in COLUMNS) + ' |\n|'
            + '---|' * (2 + len(COLUMNS)))
    for s in sets:
        for name in names:
            cells = []
            for key, _ in COLUMNS:
                v = np.array([runs[name][sd].get(f'{s}/{key}', np.nan) for sd in seeds])
                data[f'{name}/{s}/{key}'] = v.tolist()
                cell = f'{np.mean(v):.4f} +- {np.std(v, ddof=1):.4f}' if len(v) > 1 else f'{v[0]:.4f}'
                if name != base:
                    d = v - np.array([runs[base][sd].get(f'{s}/{key}', np.nan) for sd in seeds])
                    cell += f'<br>diff {np.mean(d):+.4f} +- {np.std(d, ddof=1) if len(d) > 1 else 0:.4f}'
                    cell += f' ({int((d < 0).sum())}/{len(d)} < 0)'
                cells.append(cell)
            rows.append(f'| {s} | {name} | ' + ' | '.join(cells) + ' |')
    return head + '\n' + '\n'.join(rows), data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed to train.py and test.py')
    parser.add_argument('--seeds', nargs='+', type=int, help='the seed study: every config once per seed')
    args = parser.parse_args(argv)
    py = sys.executable
    run([py, 'tools/make_demo_data.py', '--root', args.data_root])
    extra = ['--cfg-options', *args.cfg_options] if args.cfg_options else []
    if args.seeds:
        runs = seed_runs(py, args.configs, args.seeds, args.work_dir, args.cfg_options)
        md, data = seed_table(runs, args.seeds)
        write_report(args.work_dir, 'seeds', md, data)
        print(f'\nSeeds {args.seeds}: mean +- std; paired difference to {list(runs)[0]}')
        print(md)
        return
    results = {}
    for config in args.configs:
        name = osp.splitext(osp.basename(config))[0]
        results[name] = train_and_test(py, config, osp.join(args.work_dir, name), extra)
    out = table(results)
    with open(osp.join(ROOT, args.work_dir, 'summary.txt'), 'w') as f:
        f.write(out + '\n')
    print('\nPooled pixel calibration (10 bins, top-label) and SOD scores on the demo test sets:')
    print(out)


if __name__ == '__main__':
    os.chdir(ROOT)
    main()
