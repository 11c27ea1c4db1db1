"""Compatibility fixes for the pinned stack, in one place. Imported by ``import uqseg``.

mmengine 0.10.7 + torch >= 2.6: ``torch.load`` defaults to ``weights_only=True`` since torch 2.6,
and mmengine's local checkpoint loader (``mmengine.runner.checkpoint.load_from_local``) calls
``torch.load(filename, map_location=...)`` without the argument. An mmengine checkpoint holds
more than tensors (the message hub's ``HistoryBuffer`` objects, numpy arrays, the config text),
so ``--resume`` and ``load_from`` fail with an "Unsupported global" ``UnpicklingError``.

Fix: re-register the loader for local paths (``CheckpointLoader.register_scheme(prefixes='',
force=True)``, mmengine's own extension point) with one that passes ``weights_only=False``.
Site-packages stay untouched. As with torch < 2.6 and mmengine's own behaviour, this unpickles
arbitrary objects: load only checkpoints you trust (your own runs). Remote schemes
(``open-mmlab://``, ``http://``...) keep their loaders; they fetch plain state dicts, which load
with ``weights_only=True``.

mmengine 0.10.7 ``--launcher pytorch`` without CUDA: see :func:`init_cpu_distributed`, which the
tools call (an explicit call, not applied at import).
"""
from __future__ import annotations

import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader

_TORCH_DEFAULTS_TO_WEIGHTS_ONLY = tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2]) >= (2, 6)


def load_local_checkpoint(filename: str, map_location=None) -> dict:
    """mmengine's ``load_from_local`` with ``weights_only=False`` (trusted local checkpoints)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def apply() -> None:
    """Install the fixes (idempotent)."""
    if _TORCH_DEFAULTS_TO_WEIGHTS_ONLY:
        CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


apply()


def init_cpu_distributed(cfg) -> bool:
    """Let ``--launcher pytorch`` (``tools/dist_*.sh``) run on a machine without CUDA.

    mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device(local_rank)``, and its
    default DDP wrapper passes ``device_ids=[local_rank]``; both fail without a GPU. When no CUDA
    device is present this starts the gloo process group itself (from torchrun's environment
    variables; mmengine then finds it initialised and uses it) and, unless the config sets its
    own ``model_wrapper_cfg``, wraps the model in DDP without ``device_ids``. Used by
    ``tools/train.py`` and ``tools/test.py`` (CPU runs for tests and debugging). Returns whether
    it started a group.
    """
    import torch.distributed as dist
    if cfg.get('launcher') != 'pytorch' or torch.cuda.is_available() or dist.is_initialized():
        return False
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        raise ValueError("no CUDA device: multi-process runs on CPU need env_cfg.dist_cfg.backend='gloo', "
                         f'got {backend!r}')
    dist.init_process_group('gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)
    return True
