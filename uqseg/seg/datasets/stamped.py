"""Generated data written once: a folder counts as complete when its ``.complete`` stamp is there.

Used by ``uqseg make-demo-data`` and ``uqseg demo`` for the synthetic SOD and shapes data.
"""
from __future__ import annotations

import os.path as osp
import shutil
import time
from typing import Callable, Optional

__all__ = ['STAMP', 'write_stamped']

#: The file that marks a generated data folder as complete (its content: ``seed=<seed>``).
STAMP = '.complete'


def write_stamped(root: str, make: Callable[..., dict], seed: int = 0, force: bool = False) -> Optional[float]:
    """``make(root, seed=seed)`` into a fresh ``root`` with a :data:`STAMP` file, unless the stamp is there
    and not ``force`` (an incomplete folder is rewritten); the seconds it took, or None when complete."""
    stamp = osp.join(root, STAMP)
    if osp.exists(stamp) and not force:
        return None
    if osp.exists(root):
        shutil.rmtree(root)
    start = time.time()
    make(root, seed=seed)
    with open(stamp, 'w') as f:
        f.write(f'seed={seed}\n')
    return time.time() - start
