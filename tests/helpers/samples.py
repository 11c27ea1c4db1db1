"""Build mmseg predictions the way the Evaluator hands them to metrics (``SegDataSample.to_dict()``),
and evaluate metrics in two gloo processes as a distributed validation or test does."""
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


def make_sample(seg_logits: torch.Tensor, label: torch.Tensor, set_name: str | None = 'A',
                img_path: str = 'x.jpg') -> dict:
    """A sample dict; ``set_name=None`` leaves ``set_name`` out of the metainfo."""
    meta = dict(img_path=img_path) if set_name is None else dict(set_name=set_name, img_path=img_path)
    s = SegDataSample(metainfo=meta)
    s.seg_logits = PixelData(data=seg_logits)
    s.gt_sem_seg = PixelData(data=label[None] if label.dim() == 2 else label)
    return s.to_dict()


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _rank_main(rank, world, port, metric_cfgs, samples, queue):
    import torch.distributed as dist
    from mmengine.registry import init_default_scope
    from mmseg.registry import METRICS

    import uqseg  # noqa: F401
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    init_default_scope('mmseg')
    # a DistributedSampler-like split: interleaved, with the first samples repeated as padding
    padded = samples + samples[:(-len(samples)) % world]
    outs = []
    for cfg in metric_cfgs:
        m = METRICS.build(cfg)
        for s in padded[rank::world]:
            m.process({}, [s])
        outs.append(m.evaluate(len(samples)))
    queue.put((rank, outs))
    dist.destroy_process_group()


def evaluate_on_two_ranks(metric_cfgs: list, samples: list, timeout: float = 180) -> dict:
    """Evaluate each metric config in 2 gloo processes (mmengine's collect_results path).

    Returns ``{rank: [metrics dict per config]}``. The processes are spawned, so this module is
    imported in them by its name ``tests.helpers.samples`` (spawn passes ``sys.path`` on).
    """
    import torch.multiprocessing as mp
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, metric_cfgs, samples, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=timeout) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    return results


def raw_batch(n: int = 2, size=(64, 64), seed: int = 0, flip: bool = False) -> dict:
    """What an mmseg test dataloader gives: ``n`` uint8 images of ``size`` and samples with metainfo
    (set ``A``, ``flip``) and labels 0..3, seeded."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        s = SegDataSample(metainfo=dict(img_path=f'{i}.png', img_shape=size, ori_shape=size, pad_shape=size,
                                        padding_size=[0, 0, 0, 0], flip=flip,
                                        flip_direction='horizontal' if flip else None, set_name='A'))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1,) + size, generator=g))
        samples.append(s)
    inputs = [torch.randint(0, 256, (3,) + size, generator=g, dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)
