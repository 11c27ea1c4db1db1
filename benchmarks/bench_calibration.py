"""Throughput and peak memory of uqseg's pixel calibration metric vs torchmetrics and a plain sum.

    python benchmarks/bench_calibration.py [--pixels 50e6] [--image-size 384] [--n-bins 15]
                                           [--threads 1] [--device cpu|cuda]

The same stream of images (a foreground-probability map ``p`` and a 0/1 label per image,
generated from a fixed seed, ``--pixels`` pixels in all) is fed to:

* ``sum``          a plain one-pass ``p.sum()`` per image (the memory-bandwidth floor of the
                   probability map alone);
* ``sum-input``    ``p.sum() + y.sum()`` per image: one pass over everything the metric must read
                   (the probability map and mmseg's int64 label map, 12 bytes a pixel on CPU);
* ``uqseg``        the registered mmseg metric ``PixelCalibrationMetric`` (positive-class, the
                   convention of torchmetrics' binary ECE), ``process()`` per image with all its
                   input checks, then ``compute_metrics``;
* ``uqseg-top``    the same metric in its default top-label mode, with per-image errors and
                   NLL/Brier (the configuration of the SOD configs);
* ``accumulator``  ``uqseg.core.accumulators.CalibrationAccumulator.update`` (torch-only
                   core, with its checks);
* ``torchmetrics`` ``BinaryCalibrationError(n_bins, norm='l1')``: ``update`` per image, then
                   ``compute``;
* ``bincount``     the histogram step alone, the floor of any metric built on library calls: the
                   two ``torch.bincount`` calls the metric makes (a count over the per-pixel
                   (bin, label) keys, then the float64 confidence sums), given keys and weights
                   prepared outside the timed part.

Only the method's own calls are timed (image generation is not). Each method runs in a fresh
subprocess; on CPU its peak memory is the growth of the process's peak RSS over a baseline taken
after one image and a warm-up call (``resource.getrusage``); on CUDA it is
``torch.cuda.max_memory_allocated`` minus the memory held before the method starts. With
``--scales 0.2,1`` (default) ``uqseg`` and ``torchmetrics`` also run on a fifth of the pixels to
show how their memory grows with the pixel count. The machine's other load affects the
timings: compare figures of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ('sum', 'sum-input', 'bincount', 'uqseg', 'uqseg-top', 'accumulator', 'torchmetrics')


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def worker(method: str, pixels: int, size: int, n_bins: int, device: str, threads: int) -> dict:
    import torch
    sys.path.insert(0, ROOT)
    if threads:
        torch.set_num_threads(threads)
    cuda = device.startswith('cuda')
    n_img = max(1, -(-pixels // (size * size)))
    gen = torch.Generator(device=device).manual_seed(0)

    def image():
        p = torch.rand(1, size, size, generator=gen, device=device)
        y = (torch.rand(size, size, generator=gen, device=device) < p[0] * 0.9 + 0.05).long()
        return p, y

    def sample(p, y):
        return dict(seg_logits=dict(data=p), gt_sem_seg=dict(data=y[None]), set_name='bench', img_path='x')

    prepare = None  # untimed per-image preparation of the inputs of ``update``
    if method in ('uqseg', 'uqseg-top'):
        from mmengine.registry import init_default_scope
        from mmseg.registry import METRICS

        import uqseg  # noqa: F401
        init_default_scope('mmseg')
        cfg = (dict(confidence='positive') if method == 'uqseg'
               else dict(confidence='top-label', per_image=True, nll_brier=True))
        metric = METRICS.build(dict(type='PixelCalibrationMetric', n_bins=n_bins, **cfg))

        def update(p, y):
            metric.process({}, [sample(p, y)])

        def final():
            return metric.compute_metrics(metric.results)['bench/ECE']

        def reset():
            metric.results.clear()
    elif method == 'accumulator':
        from uqseg.core.accumulators import CalibrationAccumulator
        acc = CalibrationAccumulator(n_bins, device=device)

        def update(p, y):
            acc.update(p[0], y)

        def final():
            return acc.compute()['ECE']

        def reset():
            acc.reset()
    elif method == 'torchmetrics':
        from torchmetrics.classification import BinaryCalibrationError
        tm = BinaryCalibrationError(n_bins=n_bins, norm='l1').to(device)

        def update(p, y):
            tm.update(p.reshape(-1), y.reshape(-1))

        def final():
            return float(tm.compute())

        def reset():
            tm.reset()
    elif method == 'bincount':
        from uqseg.core.binning import bin_keys
        n_keys = 2 * n_bins + 1
        total = [torch.zeros(n_keys, dtype=torch.float64, device=device)]

        def prepare(p, y):
            return bin_keys(p[0], n_bins, y, None)[0], p.reshape(-1).to(torch.float64)

        def update(key, w):
            total[0] += torch.bincount(key, minlength=n_keys).to(torch.float64)
            total[0] += torch.bincount(key, weights=w, minlength=n_keys)

        def final():
            return float(total[0].sum())

        def reset():
            total[0] = torch.zeros(n_keys, dtype=torch.float64, device=device)
    elif method in ('sum', 'sum-input'):
        total = [torch.zeros((), device=device)]
        with_label = method == 'sum-input'

        def update(p, y):
            total[0] = total[0] + (p.sum() + y.sum() if with_label else p.sum())

        def final():
            return float(total[0])

        def reset():
            total[0] = torch.zeros((), device=device)
    else:
        raise ValueError(method)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    # warm-up on a tiny image, then the baseline
    wp, wy = torch.rand(1, 8, 8, device=device), torch.zeros(8, 8, dtype=torch.long, device=device)
    update(*(prepare(wp, wy) if prepare else (wp, wy)))
    final()
    reset()
    first = image()
    sync()
    base = _rss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated() / 2 ** 20
    elapsed = 0.0
    for i in range(n_img):
        p, y = first if i == 0 else image()
        if prepare is not None:
            p, y = prepare(p, y)
        sync()
        t0 = time.perf_counter()
        update(p, y)
        sync()
        elapsed += time.perf_counter() - t0
        del p, y
        first = None
    sync()
    t0 = time.perf_counter()
    value = final()
    sync()
    elapsed += time.perf_counter() - t0
    out = dict(method=method, pixels=n_img * size * size, images=n_img, seconds=elapsed,
               mpix_per_s=n_img * size * size / elapsed / 1e6, value=value,
               peak_extra_mib=_rss_mib() - base, peak_rss_mib=_rss_mib())
    if cuda:
        out['peak_extra_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20 - base_gpu
    return out


def run_child(args, method: str, pixels: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', method, '--pixels', str(pixels),
           '--image-size', str(args.image_size), '--n-bins', str(args.n_bins), '--device', args.device,
           '--threads', str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        sys.stderr.write(res.stderr)
        raise SystemExit(f'{method} failed')
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pixels', type=float, default=50e6, help='pixels in all (default 50e6)')
    ap.add_argument('--image-size', type=int, default=384, help='images are SIZE x SIZE (default 384)')
    ap.add_argument('--n-bins', type=int, default=15)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=1,
                    help='torch threads (default 1: on a shared machine more threads mostly measure '
                         'contention; 0: torch default)')
    ap.add_argument('--methods', default=','.join(METHODS))
    ap.add_argument('--scales', default='0.2,1', help='pixel-count fractions for uqseg and torchmetrics')
    ap.add_argument('--json', help='also write the rows here')
    ap.add_argument('--worker', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, int(args.pixels), args.image_size, args.n_bins, args.device,
                                args.threads)))
        return []
    methods = [m for m in args.methods.split(',') if m]
    scales = sorted({float(s) for s in args.scales.split(',')} | {1.0})
    rows = []
    for method in methods:
        for s in (scales if method in ('uqseg', 'torchmetrics') else [1.0]):
            row = run_child(args, method, int(args.pixels * s))
            rows.append(row)
            print(f'  {method:<13} {row["pixels"] / 1e6:7.1f} Mpx  {row["seconds"]:8.3f} s  '
                  f'{row["mpix_per_s"]:9.1f} Mpx/s  peak +{row["peak_extra_mib"]:8.1f} MiB  result {row["value"]:.6g}',
                  flush=True)
    full = {r['method']: r for r in rows if r['pixels'] == max(x['pixels'] for x in rows)}
    print(f'\n{args.device}, {args.threads or "default"} torch threads, {args.image_size}x{args.image_size} images, '
          f'{args.n_bins} bins, {max(r["pixels"] for r in rows) / 1e6:.1f} Mpx')
    print(f'{"method":<13}{"Mpx/s":>10}{"seconds":>10}{"peak MiB":>10}')
    for m, r in full.items():
        print(f'{m:<13}{r["mpix_per_s"]:>10.1f}{r["seconds"]:>10.3f}{r["peak_extra_mib"]:>10.1f}')
    if 'uqseg' in full:
        u = full['uqseg']
        if 'torchmetrics' in full:
            t = full['torchmetrics']
            print(f'uqseg vs torchmetrics: {t["seconds"] / u["seconds"]:.1f}x faster, memory '
                  f'{u["peak_extra_mib"]:.1f} vs {t["peak_extra_mib"]:.1f} MiB; '
                  f'|ECE difference| {abs(u["value"] - t["value"]):.2e}')
        if 'sum' in full:
            print(f'uqseg vs one-pass sum of p: {u["seconds"] / full["sum"]["seconds"]:.1f}x the time of the sum')
        if 'sum-input' in full:
            print(f'uqseg vs one-pass sum of p and the label: {u["seconds"] / full["sum-input"]["seconds"]:.1f}x')
        if 'bincount' in full and 'sum' in full:
            print(f'the histogram step alone (two bincounts) vs the sum of p: '
                  f'{full["bincount"]["seconds"] / full["sum"]["seconds"]:.1f}x; uqseg vs that step: '
                  f'{u["seconds"] / full["bincount"]["seconds"]:.1f}x')
        small = [r for r in rows if r['method'] == 'uqseg' and r['pixels'] < u['pixels']]
        if small:
            print(f'uqseg memory at {small[0]["pixels"] / 1e6:.1f} vs {u["pixels"] / 1e6:.1f} Mpx: '
                  f'{small[0]["peak_extra_mib"]:.1f} vs {u["peak_extra_mib"]:.1f} MiB')
        small = [r for r in rows if r['method'] == 'torchmetrics' and r['pixels'] < u['pixels']]
        if small and 'torchmetrics' in full:
            print(f'torchmetrics memory at {small[0]["pixels"] / 1e6:.1f} vs {u["pixels"] / 1e6:.1f} Mpx: '
                  f'{small[0]["peak_extra_mib"]:.1f} vs {full["torchmetrics"]["peak_extra_mib"]:.1f} MiB')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == '__main__':
    main()
