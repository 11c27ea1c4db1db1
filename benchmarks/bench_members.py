"""Deep ensembles and MC dropout at test: time and peak memory of uqseg's segmentors against the same work by hand
and against torch-uncertainty's wrappers.

    python benchmarks/bench_members.py [--size 256] [--batch 2] [--num-classes 4] [--members 1 5 10]
                                       [--passes 2 10 20] [--device cpu|cuda] [--rounds 3] [--warmup 1]
                                       [--threads 1] [--clock wall|cpu] [--no-memory] [--json FILE]

The model is the shapes demo's (uqseg/configs/_base_/models/r18_half_fcn_shapes.py: an FCN head,
dropout 0.1 before ``conv_seg``, on a ResNetV1c-18 at half width, output stride 8) at
``--num-classes`` classes and ``--size`` x ``--size`` inputs. ``max(--members)`` copies with random
weights (seeds 0, 1, ...) are saved to checkpoints in a temporary folder, and the models load them
as a user's would (``EnsembleSegmentor(members=[dict(model=..., checkpoint=...)])``; the MC model
and the plain one load member 0's). One fixed batch of ``--batch`` random images is predicted by:

* ``uqseg``  ``EnsembleSegmentor`` of M members / ``MCDropoutEncoderDecoder(passes=T)``: one
             ``test_step`` (each member or pass preprocesses and predicts as mmseg does, fed to one
             streaming ``MemberStatistics`` per image; the sample gets the mixture and the member maps);
* ``hand``   what a user does by hand, the floor: M ``member.test_step`` calls (preprocess and
             ``predict``) of the same members / T calls of the plain ``EncoderDecoder`` with its
             dropout modules in train mode; outputs neither kept nor averaged;
* ``tu``     torch-uncertainty 0.13's ``deep_ensembles(members, task='segmentation')`` /
             ``mc_dropout(model, T, task='segmentation')`` (its default ``on_batch=True``: the batch
             repeated T times) around a plain ``nn.Module`` calling the same segmentor in tensor mode
             (logits resized to the input as ``predict`` does), on the input preprocessed once, then
             its segmentation routine's mixture: the ``(M x B) x C x H x W`` output rearranged to
             ``B x M x C x H x W``, softmax over classes, mean over members. Skipped (with a line
             saying so) where torch-uncertainty is not installed (``pip install -e ".[bench]"``).

Time: every call runs under ``torch.no_grad`` (as mmengine's test loop), each call on CUDA ends
with a synchronisation. The variants of one M (or T) run interleaved, ``--rounds`` rounds of one
call each (order rotated per round) after ``--warmup`` untimed calls; a variant's time is its best
round, as ``timeit`` advises, the median beside it (``--clock cpu``: the process's CPU time, for a
crowded CPU). The ratio uqseg / hand is checked against the target <= 1.05.

Peak memory: each (variant, M or T) runs in a fresh process, forked from a server process that
has only imported torch, mmseg and uqseg (as multiprocessing's forkserver, so that a measurement
does not pay those imports). It builds and loads the models, makes one untimed call, then
measures one call: on CPU the growth of the peak RSS over the RSS before the call (the peak is
reset through ``/proc/self/clear_refs``; glibc's mmap threshold is fixed at 128 KiB so that freed
tensors go back to the system), on CUDA ``torch.cuda.max_memory_allocated`` minus the memory
allocated before. The figure is the peak beyond the models' weights (which are printed beside);
the target is flat in M and T: the ratio of the largest M (T) to the smallest is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

TARGET = 1.05  # uqseg / hand, time
FLAT = 1.10  # peak memory beyond the weights, largest M (T) / smallest
VARIANTS = ('uqseg', 'hand', 'tu')
KINDS = {'ensemble': 'M', 'mc': 'T'}
MODEL_CONFIG = osp.join(ROOT, 'uqseg', 'configs', '_base_', 'models', 'r18_half_fcn_shapes.py')
#: glibc: big blocks always mmapped (and returned to the system when freed), fixed, in the memory processes
MALLOC_ENV = {'MALLOC_MMAP_THRESHOLD_': str(128 * 1024), 'MALLOC_TRIM_THRESHOLD_': str(128 * 1024)}
SKIPPED = 'torch-uncertainty not installed: peer skipped'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--size', type=int, default=256, help='image size (square)')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--num-classes', type=int, default=4)
    p.add_argument('--members', type=int, nargs='+', default=[1, 5, 10], help='ensemble sizes M')
    p.add_argument('--passes', type=int, nargs='+', default=[2, 10, 20], help='MC-dropout passes T (>= 2)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1, help='untimed calls of each variant first')
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads (CPU)')
    p.add_argument('--clock', default='wall', choices=('wall', 'cpu'),
                   help="wall: time.perf_counter; cpu: this process's CPU time (time.process_time), less "
                        'sensitive to other jobs on a shared CPU (CPU runs only)')
    p.add_argument('--no-memory', action='store_true', help='time only (no peak-memory processes)')
    p.add_argument('--no-peer', action='store_true', help='leave torch-uncertainty out even where installed')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', help='also write the results here')
    p.add_argument('--serve', help=argparse.SUPPRESS)  # the memory server (its work folder)
    args = p.parse_args(argv)
    if min(args.members) < 1:
        p.error(f'--members must be >= 1, got {args.members}')
    if min(args.passes) < 2:
        p.error(f'--passes must be >= 2 (MCDropoutEncoderDecoder needs two passes), got {args.passes}')
    if args.clock == 'cpu' and args.device != 'cpu':
        p.error('--clock cpu measures CPU time: use it with --device cpu')
    if args.size < 32 or args.batch < 1 or args.num_classes < 2:
        p.error('--size must be >= 32, --batch >= 1 and --num-classes >= 2')
    args.members, args.passes = sorted(set(args.members)), sorted(set(args.passes))
    return args


def peer_available() -> bool:
    """Whether torch-uncertainty's wrappers import."""
    try:
        import torch_uncertainty.methods  # noqa: F401
    except ImportError:
        return False
    return True


# -- models -------------------------------------------------------------------------------------------------------
def model_cfg(num_classes: int, size: int):
    """The shapes demo's FCN at ``num_classes`` classes, preprocessing to ``size`` x ``size``, no pretrained weights
    (a ``ConfigDict``, as a config file gives: mmseg reads ``test_cfg.mode``)."""
    from mmengine.config import Config, ConfigDict
    model = Config.fromfile(MODEL_CONFIG).model.to_dict()
    model.pop('_scope_', None)
    model['pretrained'] = None
    model['data_preprocessor']['size'] = (size, size)
    model['decode_head'].update(num_classes=num_classes, out_channels=num_classes)
    return ConfigDict(model)


@contextlib.contextmanager
def quiet():
    """mmengine's logger at WARNING inside the block (init_weights and loading log every parameter at INFO)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def write_checkpoints(cfg: dict, n: int, folder: str, seed: int = 0) -> list:
    """``n`` checkpoints of the model with random weights (seeds ``seed``, ``seed + 1``, ...) in ``folder``."""
    from mmseg.registry import MODELS
    paths = []
    for i in range(n):
        torch.manual_seed(seed + i)
        with quiet():
            model = MODELS.build(cfg)
            model.init_weights()
        path = osp.join(folder, f'member{i}.pth')
        torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
        paths.append(path)
    return paths


def build_ensemble(cfg: dict, checkpoints: list, device: str):
    """``EnsembleSegmentor`` of the members saved in ``checkpoints``, on ``device``, in eval mode."""
    from mmseg.registry import MODELS
    with quiet():
        model = MODELS.build(dict(type='EnsembleSegmentor',
                                  members=[dict(model=cfg, checkpoint=c) for c in checkpoints]))
    return model.to(device).eval()


def build_mc(cfg: dict, checkpoint: str, passes: int, device: str, seed: int = 0):
    """``MCDropoutEncoderDecoder(passes)`` loading ``checkpoint`` (a plain ``EncoderDecoder``'s), in eval mode."""
    from mmseg.registry import MODELS

    from uqseg.engine.checkpoint import load_checkpoint_strict
    with quiet():
        model = MODELS.build(dict(cfg, type='MCDropoutEncoderDecoder', passes=passes, seed=seed))
        load_checkpoint_strict(model, checkpoint)
    return model.to(device).eval()


def build_plain_dropout(cfg: dict, checkpoint: str, device: str):
    """The plain ``EncoderDecoder`` loading ``checkpoint``, in eval mode but for its dropout modules (train mode)."""
    from mmseg.registry import MODELS

    from uqseg.engine.checkpoint import load_checkpoint_strict
    from uqseg.seg.models.segmentors import dropout_modules
    with quiet():
        model = MODELS.build(cfg)
        load_checkpoint_strict(model, checkpoint)
    model.to(device).eval()
    for m in dropout_modules(model):
        m.train()
    return model


class TensorMode(torch.nn.Module):
    """A segmentor as a plain module, for torch-uncertainty: its tensor-mode logits resized to the input."""

    def __init__(self, segmentor) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from mmseg.models.utils import resize
        logits = self.segmentor(x, mode='tensor')
        return resize(logits, size=x.shape[2:], mode='bilinear',
                      align_corners=self.segmentor.decode_head.align_corners)


def tu_mixture(out: torch.Tensor, batch: int) -> torch.Tensor:
    """torch-uncertainty's segmentation routine: ``(M x B) x C x H x W`` logits to the mean softmax,
    ``B x C x H x W``."""
    from einops import rearrange
    logits = rearrange(out, '(m b) c h w -> b m c h w', b=batch)
    return logits.softmax(dim=2).mean(dim=1)


# -- one call of each variant -------------------------------------------------------------------------------------
def make_batch(batch: int, size: int, seed: int = 0) -> dict:
    """``batch`` random uint8 images of ``size`` x ``size`` and their samples' metainfo (raw, as a dataloader gives)."""
    g = torch.Generator().manual_seed(seed)
    shape = (size, size)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(batch)],
                metainfo=[dict(img_shape=shape, ori_shape=shape, pad_shape=shape) for _ in range(batch)])


def fresh(batch: dict) -> dict:
    """The batch with new, empty samples (a prediction writes into its samples)."""
    from mmseg.structures import SegDataSample
    return dict(inputs=list(batch['inputs']), data_samples=[SegDataSample(metainfo=m) for m in batch['metainfo']])


def calls(kind: str, n: int, cfg: dict, checkpoints: list, device: str, variants, seed: int = 0) -> dict:
    """variant -> a function making one prediction of ``batch`` (a dict of :func:`make_batch`), for the
    ensemble of ``n`` members or MC dropout with ``n`` passes; the models are built here."""
    out = {}
    if kind == 'ensemble':
        ens = build_ensemble(cfg, checkpoints[:n], device)
        members = list(ens.members)
        if 'uqseg' in variants:
            out['uqseg'] = lambda batch: ens.test_step(fresh(batch))

        def hand(batch):
            for m in members:
                m.test_step(fresh(batch))
        first = members[0]
    else:
        plain = build_plain_dropout(cfg, checkpoints[0], device) if {'hand', 'tu'} & set(variants) else None
        if 'uqseg' in variants:
            mc = build_mc(cfg, checkpoints[0], n, device, seed)
            out['uqseg'] = lambda batch: mc.test_step(fresh(batch))

        def hand(batch):
            for _ in range(n):
                plain.test_step(fresh(batch))
        first = plain
    if 'hand' in variants:
        out['hand'] = hand
    if 'tu' in variants:
        from torch_uncertainty.methods import deep_ensembles, mc_dropout
        if kind == 'ensemble':
            wrapped = deep_ensembles([TensorMode(m) for m in members], task='segmentation') if n > 1 \
                else TensorMode(members[0])  # deep_ensembles refuses one model (it would copy it): the model itself
        else:
            wrapped = mc_dropout(TensorMode(plain), num_estimators=n, task='segmentation')
        wrapped.eval()  # mc_dropout's eval keeps the dropout modules in train mode

        def tu(batch):
            x = first.data_preprocessor(fresh(batch), False)['inputs']
            return tu_mixture(wrapped(x), len(x))
        out['tu'] = tu
    return {v: out[v] for v in variants}


def run_call(fn, batch: dict, device: str) -> None:
    with torch.no_grad():
        fn(batch)
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def setup_process(threads: int, device: str) -> None:
    from mmengine.registry import init_default_scope

    import uqseg  # noqa: F401  (registers the segmentors)
    warnings.filterwarnings('ignore', message='``build_loss`` would be deprecated')  # mmseg's own, per model built
    if device == 'cpu':
        torch.set_num_threads(threads)
    init_default_scope('mmseg')


# -- time -----------------------------------------------------------------------------------------------------------
def time_group(fns: dict, batch: dict, args) -> dict:
    """variant -> per-round seconds of one call, the variants interleaved (module docstring)."""
    names = list(fns)
    for name in names:
        for _ in range(args.warmup):
            run_call(fns[name], batch, args.device)
    clock = time.perf_counter if args.clock == 'wall' else time.process_time
    times = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = clock()
            run_call(fns[name], batch, args.device)
            times[name].append(clock() - start)
    return times


# -- peak memory ----------------------------------------------------------------------------------------------------
def _status_mib(field: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024.0  # kB
    raise OSError(f'/proc/self/status has no {field} (peak memory needs Linux)')


def _reset_peak() -> None:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # the peak RSS (VmHWM) := the RSS now


def measure_memory(request: dict) -> dict:
    """One (kind, n, variant) in this process: the models' weights and the peak beyond them of one call."""
    from mmengine.config import ConfigDict
    device = request['device']
    cuda = device.startswith('cuda')
    setup_process(request['threads'], device)
    batch = make_batch(request['batch'], request['size'], request['seed'])
    before = torch.cuda.memory_allocated() if cuda else _status_mib('VmRSS')
    fn = calls(request['kind'], request['n'], ConfigDict(request['cfg']), request['checkpoints'], device,
               [request['variant']], request['seed'])[request['variant']]
    if cuda:
        weights = (torch.cuda.memory_allocated() - before) / 2 ** 20
    else:
        weights = _status_mib('VmRSS') - before
    run_call(fn, batch, device)  # untimed first call (lazy initialisations)
    if cuda:
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run_call(fn, batch, device)
        extra = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    else:
        base = _status_mib('VmRSS')
        _reset_peak()
        run_call(fn, batch, device)
        extra = _status_mib('VmHWM') - base
    return dict(kind=request['kind'], n=request['n'], variant=request['variant'], weights_mib=weights,
                peak_extra_mib=extra)


def serve(folder: str, peer: bool) -> None:
    """The memory server: imports once, then forks one fresh child per request line on stdin (a JSON dict); the
    child writes its result to ``<folder>/<k>.json``; the server answers each request with one line."""
    import mmseg.models  # noqa: F401

    import uqseg  # noqa: F401
    if peer:
        import torch_uncertainty.methods  # noqa: F401
    print('ready', flush=True)
    for k, line in enumerate(sys.stdin):
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: stdout stays the server's protocol, everything else goes to stderr
            code = 0
            try:
                os.dup2(2, 1)
                result = measure_memory(request)
                with open(osp.join(folder, f'{k}.json'), 'w') as f:
                    json.dump(result, f)
            except BaseException as e:  # the parent reports it
                import traceback
                traceback.print_exc()
                with open(osp.join(folder, f'{k}.json'), 'w') as f:
                    json.dump(dict(error=f'{type(e).__name__}: {e}'), f)
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.waitpid(pid, 0)
        print(k, flush=True)


class MemoryServer:
    """The parent's handle on :func:`serve` (a context manager)."""

    def __init__(self, folder: str, peer: bool) -> None:
        env = dict(os.environ, **MALLOC_ENV)
        cmd = [sys.executable, osp.abspath(__file__), '--serve', folder] + ([] if peer else ['--no-peer'])
        self.folder = folder
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        if self.proc.stdout.readline().strip() != 'ready':
            raise RuntimeError('bench_members: the memory server did not start (see its errors above)')
        self.count = 0

    def measure(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + '\n')
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        path = osp.join(self.folder, f'{self.count}.json')
        self.count += 1
        if answer != str(self.count - 1) or not osp.isfile(path):
            raise RuntimeError(f'bench_members: the memory process of {request["kind"]} {request["n"]} '
                               f'{request["variant"]} gave no result')
        with open(path) as f:
            result = json.load(f)
        if 'error' in result:
            raise RuntimeError(f'bench_members: {request["kind"]} {request["n"]} {request["variant"]}: '
                               f'{result["error"]}')
        return result

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- report ---------------------------------------------------------------------------------------------------------
def _ratio_mark(ratio: float, target: float) -> str:
    return f'<={target:.2f} ok' if ratio <= target else f'>{target:.2f} !'


def report(args, variants, res: dict) -> None:
    dev = f'{args.device}{f" ({args.threads} threads)" if args.device == "cpu" else ""}'
    print(f'\nshapes demo FCN (ResNetV1c-18 half width, d8, dropout 0.1), {args.num_classes} classes, batch '
          f'{args.batch} x 3 x {args.size} x {args.size}, {dev}; time: best of {args.rounds} rounds '
          f'({"wall clock" if args.clock == "wall" else "process CPU time"}); memory: peak beyond the weights')
    head = f'{"":<10}{"n":>4}' + ''.join(f'{v + " s":>10}' for v in variants) + f'{"uqseg/hand":>12}{"target":>12}'
    if not args.no_memory:
        head += f'{"weights MiB":>13}' + ''.join(f'{v + " MiB":>11}' for v in variants)
    print(head)
    for kind, letter in KINDS.items():
        for n, row in res['time'][kind].items():
            ratio = res['ratios'][kind][n]
            line = f'{kind:<10}{letter + "=" + str(n):>4}' + ''.join(f'{row[v]:>10.3f}' for v in variants)
            line += f'{ratio:>12.3f}{_ratio_mark(ratio, TARGET):>12}'
            if not args.no_memory:
                mem = res['memory'][kind][n]
                line += f'{res["weights_mib"][kind][n]:>13.1f}' + ''.join(f'{mem[v]:>11.1f}' for v in variants)
            print(line)
    for kind, letter in KINDS.items():
        worst = max(res['ratios'][kind], key=res['ratios'][kind].get)
        r = res['ratios'][kind][worst]
        print(f'{kind} time, uqseg / hand: worst {r:.3f} at {letter}={worst}; target <= {TARGET:.2f}: '
              f'{"met" if r <= TARGET else "NOT met"}')
    for kind, letter in KINDS.items():
        flat = res['memory_ratio'].get(kind)
        if not flat:
            continue
        ns = list(res['memory'][kind])
        print(f'{kind} peak beyond weights, {letter}={ns[-1]} / {letter}={ns[0]}: '
              + ', '.join(f'{v} {flat[v]:.2f}' for v in variants)
              + f'; uqseg flat (<= {FLAT:.2f}): {"met" if flat["uqseg"] <= FLAT else "NOT met"}')


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, not args.no_peer)
        return {}
    peer = not args.no_peer and peer_available()
    if not peer and not args.no_peer:
        print(SKIPPED)
    variants = [v for v in VARIANTS if v != 'tu' or peer]
    setup_process(args.threads, args.device)
    cfg = model_cfg(args.num_classes, args.size)
    batch = make_batch(args.batch, args.size, args.seed)
    sizes = {'ensemble': args.members, 'mc': args.passes}
    res = dict(time={}, median={}, rounds={}, ratios={}, memory={}, weights_mib={}, memory_ratio={}, peer=peer)
    with tempfile.TemporaryDirectory(prefix='bench_members_') as tmp:
        checkpoints = write_checkpoints(cfg, max(args.members), tmp, args.seed)
        for kind, ns in sizes.items():
            for key in ('time', 'median', 'rounds', 'ratios'):
                res[key][kind] = {}
            for n in ns:
                start = time.perf_counter()
                times = time_group(calls(kind, n, cfg, checkpoints, args.device, variants, args.seed), batch, args)
                res['rounds'][kind][n] = times
                res['time'][kind][n] = {v: min(t) for v, t in times.items()}
                res['median'][kind][n] = {v: statistics.median(t) for v, t in times.items()}
                res['ratios'][kind][n] = res['time'][kind][n]['uqseg'] / res['time'][kind][n]['hand']
                print(f'time {kind} {KINDS[kind]}={n}: ' + ', '.join(
                    f'{v} {1e3 * res["time"][kind][n][v]:.0f} ms' for v in variants)
                    + f' ({time.perf_counter() - start:.1f} s)', flush=True)
        if not args.no_memory:
            folder = osp.join(tmp, 'results')
            os.makedirs(folder)
            with MemoryServer(folder, peer) as server:
                for kind, ns in sizes.items():
                    res['memory'][kind], res['weights_mib'][kind] = {}, {}
                    for n in ns:
                        start = time.perf_counter()
                        row, weights = {}, {}
                        for v in variants:
                            out = server.measure(dict(kind=kind, n=n, variant=v, cfg=cfg.to_dict(),
                                                      checkpoints=checkpoints,
                                                      device=args.device, threads=args.threads, batch=args.batch,
                                                      size=args.size, seed=args.seed))
                            row[v], weights[v] = out['peak_extra_mib'], out['weights_mib']
                        res['memory'][kind][n] = row
                        res['weights_mib'][kind][n] = weights['uqseg']
                        print(f'memory {kind} {KINDS[kind]}={n}: ' + ', '.join(f'{v} +{m:.1f} MiB'
                                                                                for v, m in row.items())
                              + f' ({time.perf_counter() - start:.1f} s)', flush=True)
                    if len(ns) > 1:
                        lo, hi = res['memory'][kind][ns[0]], res['memory'][kind][ns[-1]]
                        res['memory_ratio'][kind] = {v: hi[v] / lo[v] if lo[v] > 0 else float('inf')
                                                     for v in variants}
    report(args, variants, res)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == '__main__':
    main()
