"""Online LDL's training iteration against the plain model's, and the time to fit a temperature
on 50 M validation pixels.

    python benchmarks/bench_ldl.py [--head FCNHead|UPerHead|SegformerHead] [--batch 8] [--size 128]
                                   [--iters 10] [--rounds 5] [--warmup 3] [--threads 1] [--device cpu|cuda]
                                   [--clock wall|cpu] [--fit-pixels 50000000] [--classes 19]
                                   [--chunk 2097152] [--max-samples 1000000]

1. **Iteration.** The same mmseg segmentor (``benchmarks/bench_output_layers.py``'s demo-sized
   models, same weights) as ``plain`` (``EncoderDecoder`` + ``CrossEntropyLoss``) and ``ldl``
   (``LDLEncoderDecoder`` + ``LDLLoss`` at full teacher weight, ``SegCutMix(prob=0.5)`` in the data
   preprocessor, and after every step the teacher's update, mmengine's
   ``ExponentialMovingAverage.update_parameters``, as ``EMATeacherHook`` does). An LDL iteration
   runs one more forward pass, the teacher's, in eval mode under ``torch.no_grad``. Interleaved
   rounds, best round, as bench_output_layers.py. Prints both times and the ratio (no target:
   the extra forward pass is the method).
2. **Fit.** ``--fit-pixels`` pixels of ``--classes`` logits (a calibrated model's, then scaled by
   2) stream in chunks of ``--chunk`` pixels (one 1024 x 2048 Cityscapes image is 2,097,152) into
   ``StreamingSubsample(--max-samples)``, and ``fit_temperature`` fits ``T`` on the subsample;
   the peer is one pass of the NLL (``F.cross_entropy``) over the same chunks, the cost of
   evaluating the model's loss once. Generating the logits is not timed.
"""
from __future__ import annotations

import argparse
import copy
import os.path as osp
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
import bench_output_layers as bol  # noqa: E402

VARIANTS = {'plain': 'EncoderDecoder + CrossEntropyLoss', 'ldl': 'LDLEncoderDecoder + EMA teacher + CutMix'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--head', default='FCNHead', choices=bol.HEADS)
    p.add_argument('--num-classes', type=int, default=4)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--clock', default='wall', choices=('wall', 'cpu'))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--fit-pixels', type=int, default=50_000_000)
    p.add_argument('--classes', type=int, default=19, help='classes of the fit benchmark (Cityscapes: 19)')
    p.add_argument('--chunk', type=int, default=2_097_152)
    p.add_argument('--max-samples', type=int, default=1_000_000)
    p.add_argument('--skip-fit', action='store_true')
    p.add_argument('--skip-iteration', action='store_true')
    return p.parse_args(argv)


def build(args) -> dict:
    from mmengine.model import ExponentialMovingAverage
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    base = bol.model_cfg(args.head, args.num_classes, args.size)
    base['decode_head']['loss_decode'] = dict(type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True)
    ldl = copy.deepcopy(base)
    ldl.update(type='LDLEncoderDecoder')
    ldl['data_preprocessor'] = dict(ldl['data_preprocessor'], type='BatchAugmentSegDataPreProcessor',
                                    batch_augments=[dict(type='SegCutMix', prob=0.5)])
    ldl['decode_head']['loss_decode'] = dict(type='LDLLoss', teacher_weight=0.5)
    out = {}
    weights = None
    for name, cfg in (('plain', base), ('ldl', ldl)):
        torch.manual_seed(args.seed)
        model = MODELS.build(cfg)
        if weights is None:
            weights = copy.deepcopy(model.state_dict())
        else:
            model.load_state_dict(weights, strict=False)
        model.to(args.device).train()
        optim = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-3)))
        v = dict(model=model, optim=optim, ema=None)
        if name == 'ldl':
            v['ema'] = ExponentialMovingAverage(model, momentum=0.001)
            v['ema'].module.train(False)
            model.set_teacher(v['ema'].module)
        out[name] = v
    return out


def step(v: dict, data: dict, device: str) -> None:
    v['model'].train_step(data, optim_wrapper=v['optim'])
    if v['ema'] is not None:
        v['ema'].update_parameters(v['model'])
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def bench_iteration(args) -> dict:
    from mmengine.registry import init_default_scope

    import uqseg  # noqa: F401
    init_default_scope('mmseg')
    variants = build(args)
    batch = bol.make_batches(1, args.batch, args.size, args.num_classes, args.seed)[0]
    for v in variants.values():
        for _ in range(args.warmup):
            step(v, batch, args.device)
    clock = time.perf_counter if args.clock == 'wall' else time.process_time
    names = list(variants)
    times = {n: [] for n in names}
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = clock()
            for _ in range(args.iters):
                step(variants[name], batch, args.device)
            times[name].append((clock() - start) / args.iters)
    best = {n: min(t) for n, t in times.items()}
    med = {n: statistics.median(t) for n, t in times.items()}
    print(f'Iteration: {args.head} demo model, {args.num_classes} classes, batch {args.batch} x 3 x {args.size} x '
          f'{args.size}, device {args.device}{f" ({args.threads} threads)" if args.device == "cpu" else ""}, '
          f'{args.rounds} rounds x {args.iters} iterations, {args.clock} clock')
    print(f'{"variant":<8}{"":<44}{"best ms/iter":>13}{"ratio":>8}{"median ms/iter":>16}{"ratio":>8}')
    for n in names:
        print(f'{n:<8}{VARIANTS[n]:<44}{1e3 * best[n]:>13.1f}{best[n] / best["plain"]:>8.3f}'
              f'{1e3 * med[n]:>16.1f}{med[n] / med["plain"]:>8.3f}')
    return dict(best=best, median=med, ratio=best['ldl'] / best['plain'])


def bench_fit(args) -> dict:
    from uqseg.core.temperature import StreamingSubsample, fit_temperature
    g = torch.Generator().manual_seed(args.seed)
    sub = StreamingSubsample(args.max_samples, seed=args.seed)
    t_stream = t_peer = 0.0
    left = args.fit_pixels
    while left > 0:
        n = min(args.chunk, left)
        left -= n
        z = 2.0 * torch.randn(n, args.classes, generator=g)  # a calibrated model's logits ...
        gumbel = -torch.log(-torch.log(torch.rand(n, args.classes, generator=g).clamp_min(1e-12)))
        y = (z + gumbel).argmax(1)  # ... labels drawn from softmax(z) ...
        z = 2.0 * z  # ... then overconfident: T = 2 recovers it
        start = time.perf_counter()
        sub.update(z, y)
        t_stream += time.perf_counter() - start
        start = time.perf_counter()
        F.cross_entropy(z, y)
        t_peer += time.perf_counter() - start
    zs, ys = sub.rows()
    start = time.perf_counter()
    t = float(fit_temperature(zs, ys, max_samples=None))
    t_fit = time.perf_counter() - start
    total = t_stream + t_fit
    print(f'Fit: {args.fit_pixels:,} pixels x {args.classes} classes in chunks of {args.chunk:,}, subsample '
          f'{zs.shape[0]:,} rows; T = {t:.4f} (true 2)')
    print(f'  streaming subsample {t_stream:.2f} s + fit {t_fit:.2f} s = {total:.2f} s; one NLL pass over the '
          f'same pixels {t_peer:.2f} s; ratio {total / max(t_peer, 1e-9):.2f}')
    return dict(temperature=t, stream_s=t_stream, fit_s=t_fit, total_s=total, peer_s=t_peer)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.device == 'cpu':
        torch.set_num_threads(args.threads)
    out = {}
    if not args.skip_iteration:
        out['iteration'] = bench_iteration(args)
    if not args.skip_fit:
        out['fit'] = bench_fit(args)
    return out


if __name__ == '__main__':
    main()
