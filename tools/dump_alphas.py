"""Dump the learned ASLP alphas of a checkpoint with the image of each, to see what ASLP perturbs.

    python tools/dump_alphas.py CHECKPOINT CONFIG --out DIR [--top 16] [--bins 50] [--cfg-options k=v ...]

CONFIG is the training config (its ``train_dataloader.dataset`` names the images: alpha i belongs
to the sample with ``sample_idx`` i of that dataset). Writes to DIR:

* ``alphas.csv``: rank, sample_idx, alpha, img_path, seg_map_path, sorted by alpha (largest first);
* ``alphas.json``: summary (count, mean, std, quantiles, max, alpha_max and the share at it, the
  share at 0, checkpoint iteration) and the top entries;
* ``alphas_hist.png``: histogram of the alphas (dashed line: alpha_max);
* ``alphas_top.png`` (``--top K``, default 16; 0 to skip): the K most perturbed images with their
  masks.

A checkpoint with several ASLP heads gets one set of files per head, prefixed by its name.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.config import Config, DictAction

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.core.aslp_rule import AT_CAP_TOL, default_alpha_max
from uqseg.core.sc_bce import resolve_perturbation
from uqseg.engine.checkpoint import add_checkpoint_arguments, load_checkpoint_file


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='checkpoint of an ASLP run (iter_*.pth)')
    parser.add_argument('config', help='the training config of that run')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--top', type=int, default=16, help='images shown in alphas_top.png (0: none)')
    parser.add_argument('--bins', type=int, default=50, help='histogram bins')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (e.g. the data_root)')
    add_checkpoint_arguments(parser, partial=False)
    return parser.parse_args(argv)


def find_alphas(state_dict: dict) -> dict[str, torch.Tensor]:
    """``{head name: alphas}`` for every 1-D ``<...head...>.alpha`` entry of a state dict
    (``decode_head.alpha`` for an EncoderDecoder with an ASLPHead)."""
    out = {}
    for key, value in state_dict.items():
        name, _, last = key.rpartition('.')
        if last == 'alpha' and 'head' in name and isinstance(value, torch.Tensor) and value.dim() == 1:
            out[name.removeprefix('module.')] = value.detach().float().cpu()
    return out


def alpha_cap(cfg: Config) -> float:
    """alpha_max of the run: the ASLPHook's, or ``min(1/beta - 0.01, 1)`` from the SCBCELoss."""
    for hook in cfg.get('custom_hooks', None) or []:
        if hook.get('type') == 'ASLPHook' and hook.get('alpha_max') is not None:
            return float(hook['alpha_max'])
    head = cfg.model.decode_head
    # the loss sits beside head=dict(...) (on an mmseg:: base) or inside it
    losses = head.get('loss_decode') or (head.get('head') or {}).get('loss_decode', {})
    for loss in losses if isinstance(losses, (list, tuple)) else [losses]:
        if loss.get('type') == 'SCBCELoss':
            beta, _ = resolve_perturbation(loss.get('perturbation', 'HI'), loss.get('beta'))
            return default_alpha_max(beta)
    return default_alpha_max()


def train_samples(cfg: Config) -> list[dict]:
    """``[{'img_path', 'seg_map_path'}]`` of the training set, indexed by sample_idx."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    while type(dataset).__name__ in ('RepeatDataset', 'ClassBalancedDataset'):
        dataset = dataset.dataset
    infos = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        infos.append(dict(img_path=info.get('img_path', ''), seg_map_path=info.get('seg_map_path') or ''))
    return infos


def summary(alpha: np.ndarray, cap: float) -> dict:
    q = np.quantile(alpha, [0.5, 0.9, 0.99]) if alpha.size else [float('nan')] * 3
    return dict(count=int(alpha.size), mean=float(alpha.mean()), std=float(alpha.std()),
                median=float(q[0]), q90=float(q[1]), q99=float(q[2]),
                min=float(alpha.min()), max=float(alpha.max()), alpha_max=cap,
                at_cap=int((alpha >= cap - AT_CAP_TOL).sum()),
                share_at_cap=float((alpha >= cap - AT_CAP_TOL).mean()),
                share_zero=float((alpha <= 0).mean()))


def write_histogram(alpha: np.ndarray, cap: float, stats: dict, path: str, bins: int, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.hist(alpha, bins=bins, range=(0.0, max(cap, float(alpha.max()), 1e-6)), color='tab:blue')
    ax.axvline(cap, color='tab:red', linestyle='--', label=f'alpha_max = {cap:.3g}')
    ax.set_xlabel('alpha (probability that the image\'s labels are perturbed)')
    ax.set_ylabel('training images')
    ax.set_title(f'{title}\nn={stats["count"]}  mean={stats["mean"]:.4f}  max={stats["max"]:.4f}  '
                 f'at cap={100 * stats["share_at_cap"]:.1f}%', fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_top(rows: list[dict], path: str) -> bool:
    """Montage of the images (and masks) of ``rows``; False if an image cannot be read."""
    import cv2
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if not rows:
        return False
    cols = 4
    n_rows = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(n_rows, 2 * cols, figsize=(2.0 * 2 * cols, 2.2 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for k, row in enumerate(rows):
        img = cv2.imread(row['img_path'], cv2.IMREAD_COLOR)
        if img is None:
            plt.close(fig)
            return False
        ax_img, ax_mask = axes[k // cols, 2 * (k % cols)], axes[k // cols, 2 * (k % cols) + 1]
        ax_img.imshow(img[:, :, ::-1])
        ax_img.set_title(f'#{row["sample_idx"]} a={row["alpha"]:.3f}', fontsize=8)
        mask = cv2.imread(row['seg_map_path'], cv2.IMREAD_GRAYSCALE) if row['seg_map_path'] else None
        if mask is not None:
            ax_mask.imshow(mask, cmap='gray', vmin=0, vmax=255)
            ax_mask.set_title(osp.basename(row['img_path'])[:18], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(argv=None) -> dict:
    args = parse_args(argv)
    ckpt = load_checkpoint_file(args.checkpoint, map_location='cpu', trust=args.trust_checkpoint)
    state = ckpt.get('state_dict', ckpt)
    heads = find_alphas(state)
    if not heads:
        raise KeyError(f'{args.checkpoint}: no ASLP alphas (a "<head>.alpha" entry) in the checkpoint; '
                       'was it trained with an ASLPHead?')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    samples = train_samples(cfg)
    cap = alpha_cap(cfg)
    it = ckpt.get('meta', {}).get('iter')
    os.makedirs(args.out, exist_ok=True)
    report = {}
    for name, alpha_t in heads.items():
        alpha = alpha_t.numpy().astype(np.float64)
        if alpha.size != len(samples):
            raise ValueError(f'{args.checkpoint}: {name}.alpha has {alpha.size} values but the training set '
                             f'of {args.config} has {len(samples)} images: give the config of the run '
                             '(or fix its data_root / ann_file with --cfg-options)')
        prefix = '' if len(heads) == 1 else f'{name}_'
        order = sorted(range(alpha.size), key=lambda i: (-alpha[i], i))
        rows = [dict(rank=r + 1, sample_idx=i, alpha=float(alpha[i]), **samples[i]) for r, i in enumerate(order)]
        with open(osp.join(args.out, f'{prefix}alphas.csv'), 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=['rank', 'sample_idx', 'alpha', 'img_path', 'seg_map_path'])
            writer.writeheader()
            writer.writerows(rows)
        stats = summary(alpha, cap)
        info = dict(checkpoint=osp.abspath(args.checkpoint), config=osp.abspath(args.config), key=f'{name}.alpha',
                    iter=it, **stats, top=rows[:20])
        with open(osp.join(args.out, f'{prefix}alphas.json'), 'w') as f:
            json.dump(info, f, indent=1)
        write_histogram(alpha, cap, stats, osp.join(args.out, f'{prefix}alphas_hist.png'), args.bins,
                        f'ASLP alphas of {osp.basename(args.checkpoint)} ({name})')
        if args.top > 0 and not write_top(rows[:args.top], osp.join(args.out, f'{prefix}alphas_top.png')):
            print(f'{name}: images not readable, alphas_top.png skipped', file=sys.stderr)
        print(f'{name}: {stats["count"]} alphas, mean {stats["mean"]:.4f}, median {stats["median"]:.4f}, '
              f'max {stats["max"]:.4f}, {100 * stats["share_at_cap"]:.1f}% at alpha_max={cap:.3g}, '
              f'{100 * stats["share_zero"]:.1f}% at 0')
        for row in rows[:5]:
            print(f'  {row["alpha"]:.4f}  #{row["sample_idx"]}  {row["img_path"]}')
        print(f'  -> {osp.join(args.out, prefix + "alphas.csv")}')
        report[name] = info
    return report


if __name__ == '__main__':
    main()
