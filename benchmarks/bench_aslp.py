"""Per-iteration training time of ASLP (sample and expected mode) against plain BCE, same model.

    python benchmarks/bench_aslp.py [--config configs/aslp_sod_demo.py] [--batch 8] [--size 128]
                                    [--iters 10] [--rounds 5] [--threads 1] [--device cpu]

One process builds the config's model three times with identical weights: the BCE baseline
(the same decode head with mmseg's ``CrossEntropyLoss(use_sigmoid=True)``), ASLP in 'sample'
mode and ASLP in 'expected' mode (``ASLPHead`` + ``SCBCELoss``). A timed ASLP iteration is the
whole of what ASLP adds in training: ``train_step`` (forward with the per-image alphas, the loss,
backward, optimizer step) followed by ``ASLPHook.after_train_iter`` (combining the per-image
statistics and updating the alphas of the batch, with updates active and a validation accuracy
set). Batches are synthetic (random images and masks, random sample indices), prepared beforehand.

To be fair on a shared machine the variants run interleaved: ``--rounds`` rounds, each timing
``--iters`` iterations of every variant in turn (order rotated per round); the per-iteration
time of a variant is the best (minimum) round, as ``timeit`` advises (slower rounds are other
processes' interference), with the median beside it. Prints the times and the ratios to BCE
(target: <= 1.05).
"""
from __future__ import annotations

import argparse
import copy
import os.path as osp
import statistics
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config', default=osp.join(ROOT, 'configs/aslp_sod_demo.py'))
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=None, help='image size (default: the config crop size)')
    p.add_argument('--iters', type=int, default=10, help='timed iterations per variant and round')
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--warmup', type=int, default=3, help='untimed iterations per variant first')
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads (CPU)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--num-samples', type=int, default=240, help='size of the alpha state')
    return p.parse_args(argv)


class _Runner:
    """What ASLPHook.after_train_iter reads from mmengine's Runner."""

    def __init__(self, model):
        from mmengine.logging import MessageHub, MMLogger
        self.model = model
        self.iter = 10 ** 6  # long past the warm-up
        self.max_iters = 2 * 10 ** 6
        self.message_hub = MessageHub.get_instance('bench_aslp')
        self.logger = MMLogger.get_instance('bench_aslp')


def build_variants(cfg, num_samples: int, device: str) -> dict:
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS

    from uqseg.seg.hooks import ASLPHook
    head = copy.deepcopy(cfg.model.decode_head)
    if head.type == 'ASLPHead':  # the ASLP configs: the wrapped head's config, merged as ASLPHead does
        inner = dict(head.pop('head'))
        inner.update({k: v for k, v in head.items() if k not in ('type', 'num_samples', 'init_alpha')})
        head = inner
    base_type = head.pop('type')
    variants = {}
    bce_cfg = copy.deepcopy(cfg.model)
    bce_cfg.decode_head = dict(head, type=base_type,
                               loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, avg_non_ignore=True))
    torch.manual_seed(0)
    bce = MODELS.build(bce_cfg)
    bce.init_weights()
    weights = bce.state_dict()
    variants['bce'] = dict(model=bce, hook=None)
    for mode in ('sample', 'expected'):
        m_cfg = copy.deepcopy(cfg.model)
        m_cfg.decode_head = dict(type='ASLPHead', head=dict(head, type=base_type), num_samples=num_samples,
                                 loss_decode=dict(type='SCBCELoss', perturbation='HI', mode=mode))
        model = MODELS.build(m_cfg)
        missing = model.load_state_dict(weights, strict=False)
        assert missing.missing_keys == ['decode_head.alpha'] and not missing.unexpected_keys, missing
        with torch.no_grad():
            model.decode_head.alpha.uniform_(0.0, 0.05)
        hook = ASLPHook(mode='calibration', warmup_iters=0)
        hook.acc_val = hook.acc_ref = 0.95
        hook._announced = True  # no 'first update' log line inside the timing
        variants[f'aslp-{mode}'] = dict(model=model, hook=hook)
    for v in variants.values():
        v['model'] = revert_sync_batchnorm(v['model'])  # SyncBN (reference config) needs a process group
        v['model'].to(device).train()
        v['optim'] = build_optim_wrapper(v['model'], copy.deepcopy(cfg.optim_wrapper))
        v['runner'] = _Runner(v['model'])
    return variants


def make_batches(n: int, batch: int, size: int, num_samples: int, seed: int = 0) -> list:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        inputs, samples = [], []
        for i in torch.randint(0, num_samples, (batch,), generator=g).tolist():
            inputs.append(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
            s = SegDataSample(metainfo=dict(sample_idx=i, img_shape=(size, size), ori_shape=(size, size),
                                            pad_shape=(size, size)))
            lab = (torch.rand(1, size, size, generator=g) < 0.2).long()
            s.gt_sem_seg = PixelData(data=lab)
            samples.append(s)
        out.append(dict(inputs=inputs, data_samples=samples))
    return out


def step(v: dict, data: dict, device: str) -> None:
    v['model'].train_step(data, optim_wrapper=v['optim'])
    if v['hook'] is not None:
        v['hook'].after_train_iter(v['runner'], 0, data, None)
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import uqseg  # noqa: F401
    if args.device == 'cpu':
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    size = args.size or int(cfg.get('crop_size', (128, 128))[0])
    cfg.model.data_preprocessor.size = (size, size)
    # random weights: a benchmark downloads nothing (the reference config names ImageNet weights)
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    variants = build_variants(cfg, args.num_samples, args.device)
    batches = make_batches(8, args.batch, size, args.num_samples)
    names = list(variants)
    for name in names:
        for k in range(args.warmup):
            step(variants[name], batches[k % len(batches)], args.device)
    times = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            start = time.perf_counter()
            for k in range(args.iters):
                step(variants[name], batches[k % len(batches)], args.device)
            times[name].append((time.perf_counter() - start) / args.iters)
    med = {name: statistics.median(t) for name, t in times.items()}
    best = {name: min(t) for name, t in times.items()}
    print(f'config {osp.relpath(args.config, ROOT)}, batch {args.batch} x {size}x{size}, device {args.device}'
          f'{f" ({args.threads} threads)" if args.device == "cpu" else ""}, {args.rounds} rounds x '
          f'{args.iters} iterations per variant')
    print(f'{"variant":<16}{"best s/iter":>12}{"ratio":>8}{"median s/iter":>15}{"ratio":>8}   per-round s / iter')
    for name in names:
        print(f'{name:<16}{best[name]:>12.4f}{best[name] / best["bce"]:>8.3f}{med[name]:>15.4f}'
              f'{med[name] / med["bce"]:>8.3f}   ' + ' '.join(f'{t:.4f}' for t in times[name]))
    return dict(median=med, best=best, ratios={n: best[n] / best['bce'] for n in names},
                median_ratios={n: med[n] / med['bce'] for n in names}, times=times)


if __name__ == '__main__':
    main()
