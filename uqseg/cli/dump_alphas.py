"""Dump the learned ASLP alphas of a checkpoint with the image of each, to see what ASLP perturbs.

    uqseg dump-alphas CHECKPOINT CONFIG --out DIR [--top 16] [--bins 50] [--cfg-options k=v ...]
                      [--trust-checkpoint] [--no-progress]

CONFIG is the training config of the run (a file, or a shipped config's name such as
aslp_sod_demo); its train_dataloader.dataset names the images: alpha i belongs to the sample with
sample_idx i of that dataset. Writes to DIR:

  alphas.csv       rank, sample_idx, alpha, img_path, seg_map_path, sorted by alpha (largest first);
  alphas.json      summary (count, mean, std, quantiles, max, alpha_max and the share at it, the
                   share at 0, checkpoint iteration) and the top entries;
  alphas_hist.png  histogram of the alphas (dashed line: alpha_max);
  alphas_top.png   (--top K, default 16; 0 to skip) the K most perturbed images with their masks.

A checkpoint with several ASLP heads gets one set of files per head, prefixed by its name.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import os.path as osp
import sys
from typing import Optional

import cv2
import numpy as np
from mmengine.config import DictAction

from uqseg.cli.configs import find_config, read_config
from uqseg.core.plots import new_figure, save_figure
from uqseg.engine.checkpoint import add_checkpoint_arguments, load_checkpoint_file
from uqseg.seg.aslp_alphas import alpha_cap, alpha_summary, find_alphas, train_samples

CSV_FIELDS = ['rank', 'sample_idx', 'alpha', 'img_path', 'seg_map_path']


def write_histogram(alpha: np.ndarray, cap: float, stats: dict, path: str, bins: int, title: str) -> None:
    """Histogram of ``alpha`` with ``cap`` dashed, the summary ``stats`` in the title."""
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    ax.hist(alpha, bins=bins, range=(0.0, max(cap, float(alpha.max()), 1e-6)), color='tab:blue')
    ax.axvline(cap, color='tab:red', linestyle='--', label=f'alpha_max = {cap:.3g}')
    ax.set_xlabel('alpha (probability that the image\'s labels are perturbed)')
    ax.set_ylabel('training images')
    ax.set_title(f'{title}\nn={stats["count"]}  mean={stats["mean"]:.4f}  max={stats["max"]:.4f}  '
                 f'at cap={100 * stats["share_at_cap"]:.1f}%', fontsize=9)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def write_top(rows: list[dict], path: str) -> bool:
    """Montage of the images (and masks) of ``rows``; False if an image cannot be read (nothing written)."""
    if not rows:
        return False
    cols = 4
    n_rows = (len(rows) + cols - 1) // cols
    fig = new_figure(2.0 * 2 * cols, 2.2 * n_rows)
    axes = fig.subplots(n_rows, 2 * cols, squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for k, row in enumerate(rows):
        img = cv2.imread(row['img_path'], cv2.IMREAD_COLOR)
        if img is None:
            return False
        ax_img, ax_mask = axes[k // cols, 2 * (k % cols)], axes[k // cols, 2 * (k % cols) + 1]
        ax_img.imshow(img[:, :, ::-1])
        ax_img.set_title(f'#{row["sample_idx"]} a={row["alpha"]:.3f}', fontsize=8)
        mask = cv2.imread(row['seg_map_path'], cv2.IMREAD_GRAYSCALE) if row['seg_map_path'] else None
        if mask is not None:
            ax_mask.imshow(mask, cmap='gray', vmin=0, vmax=255)
            ax_mask.set_title(osp.basename(row['img_path'])[:18], fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def dump_alphas(checkpoint: str, config: str, out: str, top: int = 16, bins: int = 50,
                cfg_options: Optional[dict] = None, trust: bool = False, progress: bool = True) -> dict:
    """Write the files of every ASLP head of ``checkpoint`` into ``out``; returns ``{head: alphas.json's content}``."""
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu', trust=trust)
    state = ckpt.get('state_dict', ckpt)
    heads = find_alphas(state)
    if not heads:
        raise KeyError(f'{checkpoint}: no ASLP alphas (a "<head>.alpha" entry) in the checkpoint; '
                       'was it trained with an ASLPHead?')
    config = find_config(config)
    cfg = read_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    samples = train_samples(cfg, progress=progress)
    cap = alpha_cap(cfg)
    it = ckpt.get('meta', {}).get('iter')
    os.makedirs(out, exist_ok=True)
    report = {}
    for name, alpha_t in heads.items():
        alpha = alpha_t.numpy().astype(np.float64)
        if alpha.size != len(samples):
            raise ValueError(f'{checkpoint}: {name}.alpha has {alpha.size} values but the training set '
                             f'of {config} has {len(samples)} images: give the config of the run '
                             '(or fix its data_root / ann_file with --cfg-options)')
        prefix = '' if len(heads) == 1 else f'{name}_'
        order = sorted(range(alpha.size), key=lambda i: (-alpha[i], i))
        rows = [dict(rank=r + 1, sample_idx=i, alpha=float(alpha[i]), **samples[i]) for r, i in enumerate(order)]
        with open(osp.join(out, f'{prefix}alphas.csv'), 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        stats = alpha_summary(alpha, cap)
        info = dict(checkpoint=osp.abspath(checkpoint), config=osp.abspath(config), key=f'{name}.alpha',
                    iter=it, **stats, top=rows[:20])
        with open(osp.join(out, f'{prefix}alphas.json'), 'w') as f:
            json.dump(info, f, indent=1)
        write_histogram(alpha, cap, stats, osp.join(out, f'{prefix}alphas_hist.png'), bins,
                        f'ASLP alphas of {osp.basename(checkpoint)} ({name})')
        if top > 0 and not write_top(rows[:top], osp.join(out, f'{prefix}alphas_top.png')):
            print(f'{name}: images not readable, alphas_top.png skipped', file=sys.stderr)
        print(f'{name}: {stats["count"]} alphas, mean {stats["mean"]:.4f}, median {stats["median"]:.4f}, '
              f'max {stats["max"]:.4f}, {100 * stats["share_at_cap"]:.1f}% at alpha_max={cap:.3g}, '
              f'{100 * stats["share_zero"]:.1f}% at 0')
        for row in rows[:5]:
            print(f'  {row["alpha"]:.4f}  #{row["sample_idx"]}  {row["img_path"]}')
        print(f'  -> {osp.join(out, prefix + "alphas.csv")}')
        report[name] = info
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', metavar='CHECKPOINT', help='checkpoint of an ASLP run (iter_*.pth)')
    parser.add_argument('config', metavar='CONFIG',
                        help='the training config of that run (a file or a shipped config name)')
    parser.add_argument('--out', required=True, metavar='DIR', help='output folder')
    parser.add_argument('--top', type=int, metavar='K', default=16,
                        help='images shown in alphas_top.png (default 16; 0: none)')
    parser.add_argument('--bins', type=int, metavar='N', default=50, help='histogram bins (default 50)')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', action=DictAction,
                        help='override settings of the config, key=value (e.g. the data_root)')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar (on stderr) over the training set\'s images')
    add_checkpoint_arguments(parser, partial=False)


def run(args: argparse.Namespace) -> dict:
    if args.bins < 1:
        raise ValueError(f'--bins must be at least 1, got {args.bins}')
    return dump_alphas(args.checkpoint, args.config, args.out, args.top, args.bins, args.cfg_options,
                       trust=args.trust_checkpoint, progress=not args.no_progress)
