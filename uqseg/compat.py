"""Compatibility fixes for the pinned stack, in one place. Nothing here is applied at import.

mmengine 0.10.7 ``--launcher pytorch`` without CUDA: see :func:`init_cpu_distributed`, which the
tools call (an explicit call).

Checkpoint loading on torch >= 2.6 (mmengine 0.10.7 calls ``torch.load`` without ``weights_only``,
which torch 2.6 made default to ``True``, and an mmengine checkpoint holds more than tensors) is
not patched here: :mod:`uqseg.engine.checkpoint` loads with ``weights_only=True`` and an allow-list
scoped to each load (``SafeCheckpointRunner`` for training and testing; ``docs/checkpoints.md``).
"""
from __future__ import annotations

import torch


def init_cpu_distributed(cfg) -> bool:
    """Let ``--launcher pytorch`` (``tools/dist_*.sh``) run on a machine without CUDA.

    mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device(local_rank)``, and its
    default DDP wrapper passes ``device_ids=[local_rank]``; both fail without a GPU. When no CUDA
    device is present this starts the gloo process group itself (from torchrun's environment
    variables; mmengine then finds it initialised and uses it) and, unless the config sets its
    own ``model_wrapper_cfg``, wraps the model in DDP without ``device_ids``. Used by
    ``uqseg train`` and ``uqseg test`` (CPU runs for tests and debugging). Returns whether
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
