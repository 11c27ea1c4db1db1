"""The learned ASLP alphas of a checkpoint, read back with the training images they belong to.

Alpha i of an ``ASLPHead`` belongs to the sample with ``sample_idx`` i of the run's training set
(``train_dataloader.dataset`` of its config). ``uqseg dump-alphas`` writes them out;
``tools/aslp_analysis.py`` reads them too.
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar
from mmseg.registry import DATASETS

from ..core.aslp_rule import AT_CAP_TOL, default_alpha_max
from ..core.sc_bce import resolve_perturbation


def find_alphas(state_dict: dict) -> dict[str, torch.Tensor]:
    """``{head name: alphas}`` for every 1-D ``<...head...>.alpha`` entry of a state dict
    (``decode_head.alpha`` for an EncoderDecoder with an ASLPHead)."""
    out = {}
    for key, value in state_dict.items():
        name, _, last = key.rpartition('.')
        if last == 'alpha' and 'head' in name and isinstance(value, torch.Tensor) and value.dim() == 1:
            out[name.removeprefix('module.')] = value.detach().float().cpu()
    return out


def alpha_cap(cfg) -> float:
    """alpha_max of the run of config ``cfg``: the ASLPHook's, or ``min(1/beta - 0.01, 1)`` from the SCBCELoss."""
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


def train_samples(cfg, progress: bool = False) -> list[dict]:
    """``[{'img_path', 'seg_map_path'}]`` of the config's training set, indexed by sample_idx
    (``progress``: mmengine's progress bar on stderr over the images)."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    while type(dataset).__name__ in ('RepeatDataset', 'ClassBalancedDataset'):
        dataset = dataset.dataset
    bar = ProgressBar(len(dataset), file=sys.stderr) if progress and len(dataset) else None
    infos = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        infos.append(dict(img_path=info.get('img_path', ''), seg_map_path=info.get('seg_map_path') or ''))
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    return infos


def alpha_summary(alpha: np.ndarray, cap: float) -> dict:
    """count, mean, std, median, q90, q99, min, max, alpha_max, at_cap, share_at_cap, share_zero of ``alpha``."""
    if not alpha.size:
        raise ValueError('no alphas to summarise (an empty alpha vector)')
    q = np.quantile(alpha, [0.5, 0.9, 0.99])
    at_cap = alpha >= cap - AT_CAP_TOL
    return dict(count=int(alpha.size), mean=float(alpha.mean()), std=float(alpha.std()),
                median=float(q[0]), q90=float(q[1]), q99=float(q[2]),
                min=float(alpha.min()), max=float(alpha.max()), alpha_max=cap,
                at_cap=int(at_cap.sum()), share_at_cap=float(at_cap.mean()),
                share_zero=float((alpha <= 0).mean()))
