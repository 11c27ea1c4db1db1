"""ASLP under DDP (gloo, CPU, 2 processes): identical alphas on every rank, equal to one process."""
import os
import socket
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.helpers.cfg import demo_cfg

pytestmark = pytest.mark.slow
N = 10


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _shards():
    """Per-rank (sample_idx, g) of one iteration; sample 7 is met on both ranks, 2 twice on rank 0."""
    idx = [torch.tensor([3, 7, 2, 2]), torch.tensor([7, 0, 9])]
    g = [torch.tensor([0.5, 1.25, -0.75, 2.0]), torch.tensor([-3.0, 0.125, 1e-3])]
    return idx, g


def _cfg(root, work_dir, batch):
    """aslp_sod_demo.py made batch-independent, so that 2 ranks x batch b equal 1 process x batch 2b:
    no random augmentation, GroupNorm instead of BatchNorm, no dropout, expected-mode loss, SGD."""
    cfg = demo_cfg(root, work_dir, max_iters=4, val_interval=2, config='configs/aslp_sod_demo.py')
    cfg.train_dataloader.batch_size = batch
    ds = cfg.train_dataloader.dataset
    ds.pipeline = [p for p in ds.pipeline if p['type'] != 'ReproducibleAlbu']
    gn = dict(type='GN', num_groups=4, requires_grad=True)
    cfg.model.backbone.norm_cfg = gn
    cfg.model.decode_head.norm_cfg = gn
    cfg.model.decode_head.dropout_ratio = 0.0
    cfg.model.decode_head.loss_decode.mode = 'expected'
    cfg.custom_hooks[-1].warmup_iters = 0
    cfg.custom_hooks[-1].eta = 0.02  # visible alphas after two updated iterations
    # SGD: weight differences stay proportional to the rounding differences of the gradients
    # (Adam's m / sqrt(v) turns a rounding difference of a near-zero gradient into a full step)
    cfg.optim_wrapper.optimizer = dict(type='SGD', lr=0.05)
    # CPU DDP: no device_ids (mmengine passes [LOCAL_RANK] by default, which is for GPUs)
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)
    return cfg


def _result(runner):
    from uqseg.seg.hooks import ASLPHook
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    hook = next(h for h in runner.hooks if isinstance(h, ASLPHook))
    # numpy copies: tensors sent through a multiprocessing queue need their sender alive
    return dict(alpha=model.decode_head.alpha.numpy().copy(), acc_val=hook.acc_val,
                weights={k: v.numpy().copy() for k, v in model.state_dict().items()})


def _rank_main(rank, world, port, root, work_dir, queue):
    try:
        torch.set_num_threads(1)
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
        from mmengine.runner import Runner

        import uqseg  # noqa: F401
        from uqseg.seg.hooks.aslp_hook import combine_sample_updates
        idx, g = _shards()
        seen, g_mean = combine_sample_updates(idx[rank], g[rank], N)
        cfg = _cfg(root, work_dir, batch=2)
        cfg.launcher = 'pytorch'
        runner = Runner.from_cfg(cfg)
        runner.train()
        queue.put((rank, dict(seen=seen.numpy(), g_mean=g_mean.numpy(), **_result(runner))))
    except Exception:  # report to the test instead of hanging it
        queue.put((rank, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_process_ddp_alphas_identical_and_equal_to_one_process(demo_root, tmp_path):
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, demo_root, str(tmp_path / 'ddp'), queue))
             for r in range(2)]
    for p in procs:
        p.start()
    try:
        # meanwhile, the single-process reference: the same samples in batches of 4
        from mmengine.runner import Runner

        import uqseg  # noqa: F401
        from uqseg.seg.hooks.aslp_hook import combine_sample_updates
        idx, g = _shards()
        ref_seen, ref_g = combine_sample_updates(torch.cat(idx), torch.cat(g), N)
        single = Runner.from_cfg(_cfg(demo_root, str(tmp_path / 'single'), batch=4))
        single.train()
        ref = _result(single)
        results = dict(queue.get(timeout=400) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    for rank in (0, 1):
        assert isinstance(results[rank], dict), results[rank]
    r0, r1 = ({k: ({n: torch.from_numpy(a) for n, a in v.items()} if k == 'weights' else
                   torch.from_numpy(v) if hasattr(v, 'dtype') else v) for k, v in results[r].items()}
              for r in (0, 1))
    ref = {k: ({n: torch.from_numpy(a) for n, a in v.items()} if k == 'weights' else
               torch.from_numpy(v) if hasattr(v, 'dtype') else v) for k, v in ref.items()}

    # the combination of per-rank updates: identical on both ranks and bitwise equal to one process
    assert ref_seen.tolist() == [i in (0, 2, 3, 7, 9) for i in range(N)]
    assert ref_g[7].item() == pytest.approx((1.25 - 3.0) / 2) and ref_g[2].item() == pytest.approx(0.625)
    for r in (r0, r1):
        assert torch.equal(r['seen'], ref_seen) and torch.equal(r['g_mean'], ref_g)

    # a real 2-process Runner run: the same alphas and Acc_val on both ranks ...
    assert torch.equal(r0['alpha'], r1['alpha'])
    assert r0['acc_val'] == r1['acc_val'] is not None
    assert (r0['alpha'] > 0).sum() >= 8  # two updated iterations of 2 x 2 images
    # ... and the alphas of one process seeing the same images (8 per iteration) with the same
    # weights, up to float rounding (gradients are averaged over ranks in another order)
    assert r0['acc_val'] == pytest.approx(ref['acc_val'], abs=1e-9)
    torch.testing.assert_close(r0['alpha'], ref['alpha'], rtol=0, atol=1e-5)
    assert torch.equal(r0['alpha'] > 0, ref['alpha'] > 0)
    for k, v in ref['weights'].items():
        if v.is_floating_point():
            torch.testing.assert_close(r0['weights'][k], v, rtol=1e-3, atol=1e-5, msg=k)
