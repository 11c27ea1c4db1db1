"""The demo: make the embedded data if missing, train each demo config on it, test, and print
the calibration and SOD scores per test set side by side.

    python tools/demo.py [--configs configs/bce_sod_demo.py ...] [--work-dir work_dirs/demo]
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed to train.py and test.py')
    args = parser.parse_args(argv)
    py = sys.executable
    run([py, 'tools/make_demo_data.py', '--root', args.data_root])
    results = {}
    for config in args.configs:
        name = osp.splitext(osp.basename(config))[0]
        work_dir = osp.join(args.work_dir, name)
        extra = ['--cfg-options', *args.cfg_options] if args.cfg_options else []
        start = time.time()
        run([py, 'tools/train.py', config, '--work-dir', work_dir, *extra])
        train_s = time.time() - start
        with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        run([py, 'tools/test.py', config, ckpt, '--work-dir', work_dir, *extra])
        with open(osp.join(ROOT, work_dir, 'test_metrics.json')) as f:
            results[name] = json.load(f)
        print(f'{name}: trained in {train_s:.0f} s', flush=True)
    out = table(results)
    with open(osp.join(ROOT, args.work_dir, 'summary.txt'), 'w') as f:
        f.write(out + '\n')
    print('\nPooled pixel calibration (10 bins, top-label) and SOD scores on the demo test sets:')
    print(out)


if __name__ == '__main__':
    os.chdir(ROOT)
    main()
