"""Split files for SOD data: image names without suffix, one per line (mmseg's ``ann_file``)."""
from __future__ import annotations

import os
import os.path as osp

import numpy as np


def list_names(img_dir: str, suffix: str) -> list[str]:
    """Image names (relative to ``img_dir``, without suffix), sorted, searched recursively."""
    names = []
    for root, _, files in os.walk(img_dir):
        for f in files:
            if f.endswith(suffix):
                rel = osp.relpath(osp.join(root, f), img_dir)
                names.append(rel[:-len(suffix)])
    return sorted(names)


def write_split(path: str, names: list[str]) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(n + '\n' for n in names))


def holdout_split(names: list[str], n_holdout: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split ``names`` into (train, held-out) with ``n_holdout`` held out, drawn with ``seed``.

    Both lists are sorted, so the split depends only on the set of names and the seed.
    """
    if not 0 < n_holdout < len(names):
        raise ValueError(f'cannot hold out {n_holdout} of {len(names)} images')
    order = np.random.default_rng(seed).permutation(len(names))
    held = sorted(names[i] for i in order[:n_holdout])
    held_set = set(held)
    return [n for n in names if n not in held_set], held
