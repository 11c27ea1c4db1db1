"""An ensemble under 2-process gloo (CPU DDP, the test loop's DistributedSampler padding) gives the
metrics of one process: each image is mixed from its own members' outputs wherever it is tested."""
import os
import socket
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.helpers.cfg import shapes_cfg
from tests.seg.members.common import build, model_cfg, save

pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _cfg(root, work_dir, ckpts):
    cfg = shapes_cfg(root, work_dir)
    cfg.model = dict(type='EnsembleSegmentor', members=[dict(config='ce_shapes_demo', checkpoint=c) for c in ckpts])
    for ds in cfg.test_dataloader.dataset.datasets:
        ds.indices = 1  # 3 images: rank 1 gets a padded repeat
    cfg.test_dataloader.batch_size = 1
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)
    return cfg


def _rank_main(rank, world, port, root, work_dir, ckpts, queue):
    try:
        torch.set_num_threads(1)
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
        from mmengine.runner import Runner

        import uqseg  # noqa: F401
        cfg = _cfg(root, work_dir, ckpts)
        cfg.launcher = 'pytorch'
        queue.put((rank, dict(Runner.from_cfg(cfg).test())))
    except Exception:  # report to the test instead of hanging it
        queue.put((rank, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_ensemble_under_two_process_gloo_equals_one_process(shapes_root, tmp_path):
    ckpts = [save(build(model_cfg(), seed), tmp_path / f'm{seed}.pth') for seed in (0, 1)]
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, shapes_root, str(tmp_path / 'ddp'), ckpts, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    try:
        from mmengine.runner import Runner

        import uqseg  # noqa: F401
        ref = Runner.from_cfg(_cfg(shapes_root, str(tmp_path / 'single'), ckpts)).test()
        results = dict(queue.get(timeout=400) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    for rank in (0, 1):
        assert isinstance(results[rank], dict), results[rank]
        assert results[rank].keys() == ref.keys()
        for k, v in ref.items():
            assert results[rank][k] == pytest.approx(v, rel=1e-9, abs=1e-12), (rank, k)
    assert 0 < ref['own/ood/OOD_AUROC_px'] < 1
