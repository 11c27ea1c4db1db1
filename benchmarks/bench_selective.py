"""Selective-prediction metrics at 1 M samples vs torch-uncertainty, and uqseg eval-selective vs np.load.

    python benchmarks/bench_selective.py [--samples 1e6] [--accuracy 0.95] [--file-samples 1e6]
        [--file-classes 10] [--big 50000x1000] [--threads 1] [--repeats 3] [--json OUT.json]

Part 1, the metrics (``uqseg.core.functional``: ``aurc``, ``auroc``, ``coverage_at_accuracy``, and
``selective_metrics``, all three from one sort) on ``--samples`` generated confidences (float64,
uniform in (0.5, 1), so no ties; correct with probability = confidence) against the peer in the same
run: torch-uncertainty 0.13.0's ``AURC`` and ``CovAtxRisk(1 - accuracy)`` and torchmetrics'
``BinaryAUROC`` (torch-uncertainty's AUROC). The peer metrics take ``(probs, targets)``; they are fed
two-class rows ``[conf, 1 - conf]`` with target 0 for a correct sample and 1 for an error, so their
top-class confidence is ``conf`` and their error indicator is ``1 - correct``: the same samples.
Agreement (checked and printed with both values):

* AURC within ``1 / (N - 1)``: the peer integrates the risk curve by trapezoids over coverage
  ``[1/N, 1]`` and divides by ``1 - 1/N``, i.e. ``(S - (r_1 + r_N)/2) / (N - 1)`` with ``S`` the sum of
  the risks, against uqseg's ``S / N`` (docs/metrics.md#selective-prediction); the difference is
  ``S / (N (N - 1)) - (r_1 + r_N) / (2 (N - 1))``, at most ``1 / (N - 1)`` in size;
* AUROC within 1e-6 (the same Mann-Whitney value; torchmetrics accumulates in the input dtype);
* coverage at accuracy within ``1 / N`` (the same largest prefix; uqseg allows a relative 1e-12
  rounding slack, the peer compares ``risk <= 1 - accuracy``, so a prefix exactly on the target
  may differ by one sample). The peer returns NaN where no prefix qualifies, uqseg 0.0.

When torch-uncertainty does not import, the peer is Galil et al.'s published formulas
(github.com/IdoGalil/benchmarking-uncertainty-estimation-performance, ``utils/uncertainty_metrics.py``),
written in numpy: sort by confidence descending, AURC = the mean of the cumulative risk, AUROC =
concordant / (concordant + discordant) (correct, incorrect) pairs, coverage = the largest prefix
with cumulative accuracy >= the target (their own function reads the first violation after 200
samples instead); AURC and AUROC then agree to 1e-9 (no ties). The output says which peer ran.

Part 2, the whole tool: ``uqseg eval-selective FILE`` (load, checks, every metric of
``selective_report`` for max-prob, the table) on a generated logits file of ``--file-samples`` x
``--file-classes`` and on one ``--big`` file (50,000 x 1,000 float32: ImageNet's validation set),
each against the time of ``np.load`` of the same file (both arrays read), in a child process per
file (best of ``--repeats`` after a warm-up read; peak RSS growth over the RSS before each, from
Linux's resettable peak ``VmHWM``).
Target: ratio <= 2.0. ``--threads`` sets torch's and OpenMP's threads everywhere (default 1). The
machine's other load affects the timings: compare figures of one run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _best(fn, repeats: int):
    best, value = math.inf, None
    for _ in range(repeats):
        value = None  # the last result is not kept alive while the next run allocates its own
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


# ----------------------------------------------------------------------------------------------
# part 1: the metrics vs the peer
# ----------------------------------------------------------------------------------------------
def galil_metrics(conf: np.ndarray, correct: np.ndarray, accuracy: float) -> dict:
    """Galil et al.'s formulas in numpy (sort descending; cumulative risk; concordant pairs)."""
    order = np.argsort(-conf, kind='stable')
    c = correct[order].astype(np.float64)
    k = np.arange(1, len(c) + 1)
    risk = np.cumsum(1 - c) / k
    incorrect_before = np.cumsum(1 - c) - (1 - c)
    incorrect_after = (1 - c).sum() - np.cumsum(1 - c)
    concordant = float((c * incorrect_after).sum())
    discordant = float((c * incorrect_before).sum())
    ok = np.nonzero(1 - risk >= accuracy)[0]
    return {'AURC': float(risk.mean()), 'AUROC': concordant / (concordant + discordant),
            'coverage': float((ok[-1] + 1) / len(c)) if len(ok) else 0.0}


def bench_metrics(n: int, accuracy: float, repeats: int) -> dict:
    import torch

    from uqseg.core import functional as F
    gen = torch.Generator().manual_seed(0)
    conf = 0.5 + 0.5 * (1 - torch.rand(n, generator=gen, dtype=torch.float64))  # (0.5, 1]
    conf = conf.clamp(max=1 - 1e-12)
    correct = torch.rand(n, generator=gen, dtype=torch.float64) < conf
    ties = n - int(torch.unique(conf).numel())
    rows = []
    for name, fn in (('aurc', lambda: F.aurc(conf, correct)), ('auroc', lambda: F.auroc(conf, correct)),
                     ('coverage_at_accuracy', lambda: F.coverage_at_accuracy(conf, correct, accuracy))):
        s, v = _best(fn, repeats)
        rows.append(dict(metric=name, impl='uqseg', seconds=s, value=v))
    s, m = _best(lambda: F.selective_metrics(conf, correct, (accuracy,)), repeats)
    fused = dict(metric='all three (selective_metrics, one sort)', impl='uqseg', seconds=s,
                 value=(m['AURC'], m['AUROC'], m['coverage_at_accuracy'][accuracy]))
    try:
        from torch_uncertainty.metrics import AURC, CovAtxRisk
        from torchmetrics.classification import BinaryAUROC
        peer = 'torch-uncertainty 0.13.0 (AURC, CovAtxRisk) + torchmetrics BinaryAUROC'
    except Exception as e:  # any import failure selects the fallback
        peer = f'Galil et al. formulas in numpy (torch_uncertainty did not import: {type(e).__name__}: {e})'
        AURC = None
    if AURC is not None:
        probs = torch.stack([conf, 1 - conf], 1)
        targets = (~correct).long()

        def peer_aurc():
            m = AURC()
            m.update(probs, targets)
            return float(m.compute())

        def peer_cov():
            m = CovAtxRisk(risk_threshold=float(1 - accuracy))
            m.update(probs, targets)
            return float(m.compute())

        def peer_auroc():
            m = BinaryAUROC()
            m.update(conf, correct.long())
            return float(m.compute())

        peers = (('aurc', peer_aurc), ('auroc', peer_auroc), ('coverage_at_accuracy', peer_cov))
    else:
        c_np, k_np = conf.numpy(), correct.numpy()
        peers = (('aurc', lambda: galil_metrics(c_np, k_np, accuracy)['AURC']),
                 ('auroc', lambda: galil_metrics(c_np, k_np, accuracy)['AUROC']),
                 ('coverage_at_accuracy', lambda: galil_metrics(c_np, k_np, accuracy)['coverage']))
    for name, fn in peers:
        s, v = _best(fn, repeats)
        rows.append(dict(metric=name, impl='peer', seconds=s, value=v))
    tol = {'aurc': 1 / (n - 1), 'auroc': 1e-6 if AURC is not None else 1e-9, 'coverage_at_accuracy': 1 / n}
    agree = {}
    for name in tol:
        u = next(r['value'] for r in rows if r['metric'] == name and r['impl'] == 'uqseg')
        p = next(r['value'] for r in rows if r['metric'] == name and r['impl'] == 'peer')
        diff = abs(u - p) if not (math.isnan(p) and u == 0.0) else 0.0
        agree[name] = dict(uqseg=u, peer=p, diff=diff, tol=tol[name], ok=diff <= tol[name])
    return dict(samples=n, ties=ties, peer=peer, rows=rows + [fused], agree=agree,
                fused_equal=fused['value'] == tuple(agree[k]['uqseg'] for k in tol))


# ----------------------------------------------------------------------------------------------
# part 2: eval_selective on a file vs np.load
# ----------------------------------------------------------------------------------------------
def _status_mib(field: str) -> float:
    with open('/proc/self/status') as f:
        return next(float(line.split()[1]) for line in f if line.startswith(field + ':')) / 1024.0


def _reset_peak() -> float:
    """Reset the peak RSS (Linux: ``5 > /proc/self/clear_refs``) and return the current RSS in MiB;
    where that is not possible, the peak so far (``ru_maxrss``) is the baseline."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return _status_mib('VmRSS')
    except OSError:
        return _peak_mib()


def _peak_mib() -> float:
    try:
        return _status_mib('VmHWM')
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(path: str, repeats: int, threads: int) -> dict:
    """In a child process: best time and peak RSS growth (over the RSS before it) of np.load, then
    of the tool, on ``path``."""
    import torch
    sys.path.insert(0, ROOT)
    torch.set_num_threads(threads)
    from uqseg.cli import command_module, invoke
    command_module('eval-selective')  # imported before the timing, as the tool's module was

    def load():
        with np.load(path) as f:
            return f['logits'], f['labels']

    def evaluate():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return invoke(['eval-selective', path])['rows'][0]['AURC[max-prob]']

    with np.load(path) as f:  # warm the page cache
        f['logits']
    base = _reset_peak()
    load_s, _ = _best(load, repeats)
    load_peak = _peak_mib() - base
    base = _reset_peak()
    eval_s, aurc = _best(evaluate, repeats)
    return dict(load_s=load_s, load_peak_mib=load_peak, eval_s=eval_s, eval_peak_mib=_peak_mib() - base,
                aurc=float(aurc))


def _child(args, path: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, os.path.abspath(__file__), '--worker-file', path, '--repeats', str(args.repeats),
           '--threads', str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if res.returncode:
        sys.stderr.write(res.stderr)
        raise SystemExit(f'timing on {path} failed')
    return json.loads(res.stdout.strip().splitlines()[-1])


def make_file(path: str, n: int, k: int, seed: int = 0) -> str:
    """Float32 logits of a ~70%-accurate model on ``n`` samples of ``k`` classes (chunks of 10k rows)."""
    import torch

    from uqseg.core.output_files import save_outputs
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=gen)
    z = torch.empty(n, k)
    for i in range(0, n, 10000):
        j = min(i + 10000, n)
        z[i:j] = torch.randn(j - i, k, generator=gen) * 2
        z[i:j].scatter_add_(1, y[i:j, None], (torch.rand(j - i, 1, generator=gen) * 8))
    return save_outputs(path, z, y, model=os.path.splitext(os.path.basename(path))[0])


def bench_files(args, folder: str) -> list[dict]:
    big_n, big_k = (int(float(v)) for v in args.big.lower().split('x'))
    out = []
    for n, k in ((int(args.file_samples), args.file_classes), (big_n, big_k)):
        path = make_file(os.path.join(folder, f'logits_{n}x{k}.npz'), n, k)
        t = _child(args, path)
        mib = os.path.getsize(path) / 2 ** 20
        out.append(dict(samples=n, classes=k, mib=mib, ratio=t['eval_s'] / t['load_s'], **t))
        os.remove(path)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--samples', type=float, default=1e6, help='samples of the metric comparison (1e6)')
    ap.add_argument('--accuracy', type=float, default=0.95, help='selective-accuracy target (0.95)')
    ap.add_argument('--file-samples', type=float, default=1e6, help='rows of the first file (1e6)')
    ap.add_argument('--file-classes', type=int, default=10, help='classes of the first file (10)')
    ap.add_argument('--big', default='50000x1000', help='ROWSxCLASSES of the second file (50000x1000)')
    ap.add_argument('--threads', type=int, default=1, help='torch / OpenMP threads (default 1)')
    ap.add_argument('--repeats', type=int, default=3, help='best of this many runs (3)')
    ap.add_argument('--tmp', help='folder for the generated files (default: a temporary one)')
    ap.add_argument('--json', help='also write the results here')
    ap.add_argument('--worker-file', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker_file:
        print(json.dumps(worker(args.worker_file, args.repeats, args.threads)))
        return {}
    import torch
    sys.path.insert(0, ROOT)
    torch.set_num_threads(args.threads)
    metrics = bench_metrics(int(args.samples), args.accuracy, args.repeats)
    print(f'metrics on {metrics["samples"]:,} samples ({metrics["ties"]} tied confidences), {args.threads} thread(s); '
          f'peer: {metrics["peer"]}')
    print(f'{"metric":<42}{"impl":>6}{"seconds":>10}  value')
    for r in metrics['rows']:
        v = r['value']
        shown = ', '.join(f'{x:.9g}' for x in v) if isinstance(v, tuple) else f'{v:.9g}'
        print(f'{r["metric"]:<42}{r["impl"]:>6}{r["seconds"]:>10.4f}  {shown}')
    for name, a in metrics['agree'].items():
        u = next(r['seconds'] for r in metrics['rows'] if r['metric'] == name and r['impl'] == 'uqseg')
        p = next(r['seconds'] for r in metrics['rows'] if r['metric'] == name and r['impl'] == 'peer')
        print(f'{name}: uqseg {a["uqseg"]:.9g} vs peer {a["peer"]:.9g}, |diff| {a["diff"]:.2e} '
              f'{"<=" if a["ok"] else "> !"} tol {a["tol"]:.2e}; time uqseg / peer = {u / p:.2f}')
    print(f'selective_metrics (one sort) gives the same three values: {metrics["fused_equal"]}')
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        files = bench_files(args, folder)
    print(f'\nuqseg eval-selective FILE vs np.load of FILE (best of {args.repeats}, {args.threads} thread(s)):')
    print(f'{"file":<20}{"MiB":>8}{"np.load s":>11}{"eval s":>9}{"ratio":>7}{"peak MiB load/eval":>22}')
    for f in files:
        print(f'{f["samples"]:>9,} x {f["classes"]:<6}{f["mib"]:>8.1f}{f["load_s"]:>11.3f}{f["eval_s"]:>9.3f}'
              f'{f["ratio"]:>7.2f}{f["load_peak_mib"]:>11.0f} / {f["eval_peak_mib"]:.0f}'
              + ('' if f['ratio'] <= 2.0 else '   (above the 2.0 target)'))
    result = dict(metrics=metrics, files=files, threads=args.threads)
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(result, fh, indent=1, default=str)
    return result


if __name__ == '__main__':
    main()
