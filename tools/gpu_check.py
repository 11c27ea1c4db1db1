"""The GPU check (``make gpu-check``): run it whenever a CUDA device is at hand, then copy its
summary into the README ("GPU check").

1. the ``gpu``-marked tests (``pytest -m gpu``);
2. ``benchmarks/bench_calibration.py --device cuda`` (the metric against torchmetrics and a one-pass
   read of its inputs; target: within 5x of that read, ``sum-input``);
3. a short CUDA training of ``configs/aslp_sod_demo.py`` with ``--amp`` on the demo data, then
   its test, timing both;
4. ``benchmarks/bench_ldl.py --device cuda`` (online LDL's iteration against the plain model's, and
   fitting a temperature on 50 M pixels).

Prints one summary at the end (also written to ``work_dirs/gpu_check/summary.json``). Each step
runs in its own subprocess with a time limit; a failed step is reported and the others still run.

    python tools/gpu_check.py [--pixels 50e6] [--iters 300] [--timeout 420]
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
WORK = osp.join(ROOT, 'work_dirs', 'gpu_check')


def step(name: str, cmd: list[str], timeout: float) -> dict:
    print(f'\n=== {name}: {" ".join(cmd)}', flush=True)
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = 'timeout', (exc.stdout or b'').decode() if isinstance(exc.stdout, bytes) else (exc.stdout or '')
    wall = time.time() - start
    print(out[-4000:], flush=True)
    return dict(name=name, rc=rc, wall_s=round(wall, 1), tail=out[-1500:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pixels', default='50e6', help='pixels for the calibration benchmark')
    parser.add_argument('--iters', type=int, default=300, help='training iterations of the demo ASLP run')
    parser.add_argument('--timeout', type=float, default=420, help='time limit of each step, seconds')
    args = parser.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print('gpu_check: no CUDA device; nothing to check', file=sys.stderr)
        return 2
    os.makedirs(WORK, exist_ok=True)
    py = sys.executable
    device = torch.cuda.get_device_name(0)
    results = [step('gpu tests', [py, '-m', 'pytest', '-q', '-m', 'gpu', '-p', 'no:cacheprovider'], args.timeout)]
    bench_json = osp.join(WORK, 'bench_calibration.json')
    results.append(step('bench_calibration --device cuda',
                        [py, 'benchmarks/bench_calibration.py', '--device', 'cuda', '--pixels', args.pixels,
                         '--json', bench_json], args.timeout))
    results.append(step('demo data', [py, 'tools/make_demo_data.py', '--root', 'data/demo'], args.timeout))
    work = osp.join(WORK, 'aslp_sod_demo')
    opts = ['--cfg-options', f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters // 3}',
            'default_hooks.checkpoint.interval=100000']
    results.append(step('train aslp_sod_demo --amp (cuda)',
                        [py, 'tools/train.py', 'configs/aslp_sod_demo.py', '--amp', '--work-dir', work, *opts],
                        args.timeout))
    ckpt = osp.join(work, 'last_checkpoint')
    if osp.isfile(ckpt):
        with open(ckpt) as f:
            results.append(step('test aslp_sod_demo (cuda)',
                                [py, 'tools/test.py', 'configs/aslp_sod_demo.py', f.read().strip(), '--work-dir',
                                 work], args.timeout))
    results.append(step('bench_ldl --device cuda', [py, 'benchmarks/bench_ldl.py', '--device', 'cuda', '--size', '256',
                                                      '--rounds', '3'], args.timeout))
    summary = dict(device=device, torch=torch.__version__, steps=[{k: r[k] for k in ('name', 'rc', 'wall_s')}
                                                                 for r in results])
    if osp.isfile(bench_json):
        with open(bench_json) as f:
            summary['bench_calibration'] = json.load(f)
    metrics = osp.join(work, 'test_metrics.json')
    if osp.isfile(metrics):
        with open(metrics) as f:
            summary['aslp_demo_test'] = {k: v for k, v in json.load(f).items() if k.split('/')[-1] in
                                         ('ECE', 'OE', 'maxF', 'MAE', 'S')}
    with open(osp.join(WORK, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print('\n=== GPU check summary')
    print(json.dumps(summary, indent=1))
    return 0 if all(r['rc'] == 0 for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
