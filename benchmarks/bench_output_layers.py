"""Per-iteration training time of each uqseg output layer against the plain ``conv_seg``, same segmentor.

    python benchmarks/bench_output_layers.py [--head UPerHead|FCNHead|SegformerHead] [--num-classes 4]
                                             [--batch 8] [--size 128] [--iters 10] [--rounds 5]
                                             [--warmup 3] [--threads 1] [--device cpu|cuda] [--clock wall|cpu]
                                             [--variants plain,edl,tedl-2,dismax,isomax+]

One process builds the same mmseg ``EncoderDecoder`` once per variant, with identical weights
wherever the shapes allow (everything but a prototype layer's parameters, which come from the
same seed):

* ``plain``    the head's own 1x1 ``conv_seg`` and mmseg's ``CrossEntropyLoss`` (softmax): the peer;
* ``edl``      ``OutputLayerHead`` with ``EDLLayer(evidence='relu')`` + ``EDLLoss(data_term='mse')``;
* ``tedl-2``   TEDL's stage 2: ``EDLLayer(evidence='elu')`` + ``EDLLoss(data_term='mse')`` annealed
               from the switch (``kl_anneal_start``), as ``TEDLHook`` sets it;
* ``dismax``   ``DisMaxLayer`` + ``DisMaxLoss`` (entropic scale 10);
* ``isomax+``  ``IsoMaxPlusLayer`` + ``DisMaxLoss``.

The EDL losses run with their KL term at full weight: mmengine's MessageHub ``iter``, which the
head hands to the loss, is set far past the annealing. Models (``--head``, all demo-sized):

* ``UPerHead``       the repo's demo model (configs/_base_/models/r18_half_binary.py: ResNetV1c-18 at
                     half width, a slim UPerNet head) made multi-class (``num_classes = out_channels``);
* ``FCNHead``        the same backbone dilated to output stride 8 (as mmseg's ``fcn_r50-d8``), a
                     two-conv FCN head of 64 channels;
* ``SegformerHead``  MiT at mit-b0 (tiny) width (32-64-160-256) with mmseg's SegFormer head.

A timed iteration is ``train_step`` (data preprocessing, forward, loss, backward, optimizer step:
Adam, as the demo schedule) on a fixed synthetic batch (random images, blocky random class
masks), prepared beforehand; on CUDA each iteration ends with a synchronisation. To be fair on a
shared machine the variants run interleaved: ``--rounds`` rounds, each timing ``--iters``
iterations of every variant in turn (order rotated per round), after ``--warmup`` untimed
iterations of each. The time of a variant is its best (minimum) round, as ``timeit`` advises
(slower rounds are other processes' interference), with the median beside it; on a crowded CPU
``--clock cpu`` times the process's own CPU time instead of the wall clock. Prints the times,
the ratios to ``plain`` against the target (<= 1.05) and the worst ratio.
"""
from __future__ import annotations

import argparse
import copy
import logging
import os.path as osp
import statistics
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

TARGET = 1.05
HEADS = ('UPerHead', 'FCNHead', 'SegformerHead')
#: name -> (output layer, loss, description); None: the head's own conv_seg.
VARIANTS = {
    'plain': (None, dict(type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True),
              'conv_seg + CrossEntropyLoss'),
    'edl': (dict(type='EDLLayer', evidence='relu'),
            dict(type='EDLLoss', data_term='mse', kl_anneal_iters=1000),
            'EDLLayer(relu) + EDLLoss(mse)'),
    'tedl-2': (dict(type='EDLLayer', evidence='elu', evidential=True),
               dict(type='EDLLoss', data_term='mse', kl_anneal_start=1000, kl_anneal_iters=1000),
               'EDLLayer(elu) + EDLLoss(mse), stage 2'),
    'dismax': (dict(type='DisMaxLayer'), dict(type='DisMaxLoss', entropic_scale=10.0),
               'DisMaxLayer + DisMaxLoss'),
    'isomax+': (dict(type='IsoMaxPlusLayer'), dict(type='DisMaxLoss', entropic_scale=10.0),
                'IsoMaxPlusLayer + DisMaxLoss'),
}
_HUB_ITER = 10 ** 6  # MessageHub 'iter' during the benchmark: past every KL annealing


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--head', default='UPerHead', choices=HEADS)
    p.add_argument('--num-classes', type=int, default=4)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=128, help='image size (square)')
    p.add_argument('--iters', type=int, default=10, help='timed iterations per variant and round')
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--warmup', type=int, default=3, help='untimed iterations per variant first')
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads (CPU)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--lr', type=float, default=2e-3, help='Adam learning rate (the demo schedule)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--clock', default='wall', choices=('wall', 'cpu'),
                   help="wall: time.perf_counter (as bench_aslp.py); cpu: this process's CPU time "
                        '(time.process_time), less sensitive to other jobs on a shared CPU (CPU runs only)')
    p.add_argument('--variants', default=','.join(VARIANTS),
                   help=f'comma-separated subset of {",".join(VARIANTS)} (plain is always run)')
    args = p.parse_args(argv)
    names = [n.strip() for n in args.variants.split(',') if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f'unknown variants {unknown}; choose from {list(VARIANTS)}')
    args.variants = ['plain'] + [n for n in VARIANTS if n in names and n != 'plain']
    if args.clock == 'cpu' and args.device != 'cpu':
        p.error('--clock cpu measures CPU time: use it with --device cpu')
    if args.num_classes < 2:
        p.error('--num-classes must be >= 2 (the output layers need a softmax over classes)')
    return args


def model_cfg(head: str, num_classes: int, size: int) -> dict:
    """The plain segmentor's config (``decode_head.loss_decode`` set per variant later)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/models/r18_half_binary.py'))
    model = cfg.model.to_dict()
    model.pop('_scope_', None)
    model['pretrained'] = None  # random weights: a benchmark downloads nothing
    model['data_preprocessor']['size'] = (size, size)
    model['auxiliary_head'] = None
    norm_cfg = dict(type='BN', requires_grad=True)
    dh = model['decode_head']
    dh.pop('threshold', None)
    if head == 'FCNHead':
        model['backbone'].update(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4))
        dh = dict(type='FCNHead', in_channels=256, in_index=3, channels=64, num_convs=2, concat_input=True,
                  dropout_ratio=0.1, norm_cfg=norm_cfg, align_corners=False)
    elif head == 'SegformerHead':
        model['backbone'] = dict(
            type='MixVisionTransformer', in_channels=3, embed_dims=32, num_stages=4, num_layers=[2, 2, 2, 2],
            num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
            mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1)
        dh = dict(type='SegformerHead', in_channels=[32, 64, 160, 256], in_index=[0, 1, 2, 3], channels=256,
                  dropout_ratio=0.1, norm_cfg=norm_cfg, align_corners=False)
    dh.update(num_classes=num_classes, out_channels=num_classes)
    model['decode_head'] = dh
    return model


def variant_cfg(base: dict, name: str) -> dict:
    layer, loss, _ = VARIANTS[name]
    cfg = copy.deepcopy(base)
    head = cfg.pop('decode_head')
    if layer is None:
        cfg['decode_head'] = dict(head, loss_decode=copy.deepcopy(loss))
    else:
        cfg['decode_head'] = dict(type='OutputLayerHead', head=head, output_layer=copy.deepcopy(layer),
                                  loss_decode=copy.deepcopy(loss))
    return cfg


def build_variants(args) -> dict:
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    base = model_cfg(args.head, args.num_classes, args.size)
    variants = {}
    weights = None
    for name in args.variants:
        torch.manual_seed(args.seed)
        model = MODELS.build(variant_cfg(base, name))
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # init_weights logs every parameter's init at INFO
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
        if weights is None:  # plain: the reference weights
            weights = copy.deepcopy(model.state_dict())
        else:
            own = model.state_dict()
            shared = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
            res = model.load_state_dict(shared, strict=False)
            not_loaded = [k for k in res.missing_keys if not k.startswith('decode_head.conv_seg.')]
            assert not not_loaded and not res.unexpected_keys, (name, res)
        model.to(args.device).train()
        optim = build_optim_wrapper(model, dict(type='OptimWrapper',
                                                optimizer=dict(type='Adam', lr=args.lr, weight_decay=0.0)))
        variants[name] = dict(model=model, optim=optim)
    return variants


def make_batches(n: int, batch: int, size: int, num_classes: int, seed: int = 0) -> list:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    cell = max(1, size // 8)
    out = []
    for _ in range(n):
        inputs, samples = [], []
        for _ in range(batch):
            inputs.append(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
            s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
            blocks = torch.randint(0, num_classes, (1, -(-size // cell), -(-size // cell)), generator=g)
            lab = blocks.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :size, :size].contiguous()
            s.gt_sem_seg = PixelData(data=lab)
            samples.append(s)
        out.append(dict(inputs=inputs, data_samples=samples))
    return out


def step(v: dict, data: dict, device: str) -> dict:
    losses = v['model'].train_step(data, optim_wrapper=v['optim'])
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return losses


def setup(args):
    """The variants and batches (also for profiling one variant from outside)."""
    from mmengine.logging import MessageHub
    from mmengine.registry import init_default_scope

    import uqseg  # noqa: F401
    if args.device == 'cpu':
        torch.set_num_threads(args.threads)
    init_default_scope('mmseg')
    MessageHub.get_instance('bench_output_layers')
    MessageHub.get_current_instance().update_info('iter', _HUB_ITER)
    variants = build_variants(args)
    batches = make_batches(1, args.batch, args.size, args.num_classes, args.seed)  # one fixed batch
    return variants, batches


def main(argv=None) -> dict:
    args = parse_args(argv)
    variants, batches = setup(args)
    names = list(variants)
    from mmengine.logging import MessageHub
    for name in names:
        for k in range(args.warmup):
            step(variants[name], batches[k % len(batches)], args.device)
    clock = time.perf_counter if args.clock == 'wall' else time.process_time
    times = {name: [] for name in names}
    for r in range(args.rounds):
        MessageHub.get_current_instance().update_info('iter', _HUB_ITER)
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            start = clock()
            for k in range(args.iters):
                step(variants[name], batches[k % len(batches)], args.device)
            times[name].append((clock() - start) / args.iters)
    best = {name: min(t) for name, t in times.items()}
    med = {name: statistics.median(t) for name, t in times.items()}
    ratios = {n: best[n] / best['plain'] for n in names}
    median_ratios = {n: med[n] / med['plain'] for n in names}

    backbone = {'UPerHead': 'ResNetV1c-18 half width', 'FCNHead': 'ResNetV1c-18 half width, d8',
                'SegformerHead': 'MiT-b0'}[args.head]
    print(f'{args.head} on {backbone}, {args.num_classes} classes, batch {args.batch} x 3 x {args.size} x '
          f'{args.size}, device {args.device}{f" ({args.threads} threads)" if args.device == "cpu" else ""}, '
          f'{args.rounds} rounds x {args.iters} iterations per variant after {args.warmup} warm-up, '
          f'{"wall-clock" if args.clock == "wall" else "process CPU"} time')
    print(f'{"variant":<10}{"layer + loss":<40}{"best ms/iter":>13}{"ratio":>8}{"target":>12}'
          f'{"median ms/iter":>16}{"ratio":>8}   per-round ms/iter')
    for name in names:
        mark = '' if name == 'plain' else (f'<={TARGET:.2f} ok' if ratios[name] <= TARGET else f'>{TARGET:.2f} !')
        print(f'{name:<10}{VARIANTS[name][2]:<40}{1e3 * best[name]:>13.1f}{ratios[name]:>8.3f}{mark:>12}'
              f'{1e3 * med[name]:>16.1f}{median_ratios[name]:>8.3f}   '
              + ' '.join(f'{1e3 * t:.1f}' for t in times[name]))
    others = [n for n in names if n != 'plain']
    worst = max(others, key=ratios.get) if others else 'plain'
    print(f'worst ratio to plain: {ratios[worst]:.3f} ({worst}); target <= {TARGET:.2f}: '
          f'{"met" if ratios[worst] <= TARGET else "NOT met"}')
    return dict(best=best, median=med, ratios=ratios, median_ratios=median_ratios, times=times, worst=worst)


if __name__ == '__main__':
    main()
