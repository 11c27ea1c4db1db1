"""The demo: train BCE and ASLP on the synthetic SOD data, test both, print the calibration table.

    uqseg demo [--iters N] [--jobs N] [--configs NAME ...] [--work-dir work_dirs/demo]
               [--cfg-options KEY=VALUE ...]
    uqseg demo --seeds 0 1 2 3 4 [--configs NAME ...]     # the seed study
    python tools/demo.py [...]; make demo                  # the same

It works in the current folder: the demo data goes to ./data/demo (made in about 10 s, kept once
complete), each config's run to ./work_dirs/demo/<config>/ (train.log, test.log, checkpoints,
test_metrics.json), the pictures (reliability diagrams and risk-coverage curves per test set)
to ./work_dirs/demo/pictures/ and the table to ./work_dirs/demo/summary.txt. Each training and test
is a ``uqseg train`` / ``uqseg test`` subprocess whose output goes to its log; the demo prints one
line per stage, and on a failure the log's last lines and its path.

The configs (default: the shipped bce_sod_demo and aslp_sod_demo) train with their own schedule,
1,200 iterations (``--iters N``: N instead, a quick look; the 1,200 make the baseline
overconfident on the demo test sets, where ASLP's point shows; after 600 it was so on some seeds
only). The trainings run at the same
time, ``--jobs`` at once (default: one per CPU core, at most one per config), each with
OMP_NUM_THREADS = cores / jobs unless OMP_NUM_THREADS is set: on 2 cores, the two trainings with
one thread each, about 10 minutes in all (BCE alone took 7 minutes on one thread), and the same
numbers as one after the other with ``OMP_NUM_THREADS=1`` (floats depend on the thread count).

With ``--seeds`` every config is trained and tested once per seed (``randomness.seed``, work dirs
``<work-dir>/seed<N>/<config>``; runs whose test_metrics.json exists are reused) and the table
gives, per set and score, the mean and standard deviation over the seeds and, for every config
but the first (the baseline), the paired difference to the baseline per seed (mean, standard
deviation, and in how many seeds it is negative). Written to ``<work-dir>/seeds.md`` and
``seeds.json``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Optional, Sequence

import numpy as np

from uqseg.cli.configs import find_config, read_config
from uqseg.cli.test import METRICS_FILE
from uqseg.seg.datasets.demo_data import make_demo_data
from uqseg.seg.datasets.stamped import write_stamped

__all__ = ['DEFAULT_CONFIGS', 'DATA_ROOT', 'COLUMNS', 'uqseg_command', 'config_name', 'usable_cpus', 'job_env',
           'log_tail', 'train_progress', 'Stages', 'run_logged', 'last_checkpoint', 'train_and_test',
           'run_jobs', 'seed_runs', 'table', 'calibration_verdict', 'seed_table', 'write_report', 'collect_pictures']

#: The configs of the demo (shipped names): the baseline first.
DEFAULT_CONFIGS = ('bce_sod_demo', 'aslp_sod_demo')
#: The folder the demo configs read their data from (relative to the current folder).
DATA_ROOT = 'data/demo'
#: (metric key, column header) of the demo table.
COLUMNS = [('ECE', 'ECE'), ('OE', 'OE'), ('MAE', 'MAE'), ('maxF', 'max-F'), ('S', 'S'), ('meanE', 'E')]
_ITER = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/(\d+)\]')


def uqseg_command(command: str, *args: str) -> list[str]:
    """``python -m uqseg <command> *args`` with this interpreter (what a pip install has)."""
    return [sys.executable, '-m', 'uqseg', command, *args]


def config_name(config: str) -> str:
    """The name of a config file or shipped config: its file name without ``.py``."""
    return osp.splitext(osp.basename(config))[0]


def usable_cpus() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


def job_env(jobs: int, cpus: Optional[int] = None) -> dict:
    """The environment of a subprocess when ``jobs`` run at once: OMP_NUM_THREADS = cores / jobs (at
    least 1) unless the caller's environment sets it."""
    env = dict(os.environ)
    if 'OMP_NUM_THREADS' not in env:
        env['OMP_NUM_THREADS'] = str(max(1, (cpus or usable_cpus()) // max(1, jobs)))
    return env


def log_tail(path: str, lines: int = 20) -> str:
    """The last ``lines`` lines of the text file ``path`` ('' if it cannot be read)."""
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


def train_progress(log: str) -> Optional[tuple[int, int]]:
    """``(iteration, max iterations)`` of the last mmengine training line in ``log``, None before the first."""
    try:
        with open(log, 'rb') as f:
            f.seek(max(0, osp.getsize(log) - 16384))
            text = f.read().decode(errors='replace')
    except OSError:
        return None
    found = _ITER.findall(text)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


class _Cancelled(Exception):
    """A stage stopped because another one failed."""


class Stages:
    """One progress line per stage (``[k/total] what: done in S s (log: ...)``), from any thread.

    ``total=None`` leaves the numbers out. On a terminal, the iteration of the trainings that run
    is shown on a status line that the next stage line replaces."""

    def __init__(self, total: Optional[int] = None, stream=None):
        self.total, self.count = total, 0
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.training: dict[str, str] = {}  # name -> log of the trainings that run
        self.status = False

    def tag(self) -> str:
        """The next stage's ``[k/total] `` ('' without a total)."""
        with self.lock:
            self.count += 1
            return f'[{self.count}/{self.total}] ' if self.total else ''

    def line(self, text: str, error: bool = False) -> None:
        """Print ``text`` (to stderr with ``error``) in place of the status line."""
        with self.lock:
            if self.status:
                self.stream.write('\r\033[K')
                self.stream.flush()
                self.status = False
            print(text, file=sys.stderr if error else self.stream, flush=True)

    def show_status(self) -> None:
        """On a terminal, the trainings' current iterations (read from their logs) on one status line."""
        if not getattr(self.stream, 'isatty', lambda: False)():
            return
        with self.lock:
            parts = []
            for name, log in self.training.items():
                it = train_progress(log)
                parts.append(f'{name} {it[0]}/{it[1]}' if it else f'{name} starting')
            if parts:
                self.stream.write('\r\033[K  training: ' + ', '.join(parts))
                self.stream.flush()
                self.status = True

    def run(self, what: str, cmd: Sequence[str], log: str, env: Optional[dict] = None,
            cancel: Optional[threading.Event] = None, announce: bool = False, training: Optional[str] = None) -> float:
        """:func:`run_logged` as a stage; ``announce`` prints a line when it starts too (long stages),
        ``training`` names it on the status line."""
        tag = self.tag()
        if announce:
            self.line(f'{tag}{what}: started (log: {log})')
        with self.lock:
            if training:
                self.training[training] = log
        try:
            seconds = run_logged(cmd, log, what, env=env, cancel=cancel, stages=self)
        finally:
            with self.lock:
                self.training.pop(training, None)
        self.line(f'{tag}{what}: done in {seconds:.0f} s (log: {log})')
        return seconds


def run_logged(cmd: Sequence[str], log: str, what: str = '', env: Optional[dict] = None,
               cancel: Optional[threading.Event] = None, stages: Optional[Stages] = None) -> float:
    """Run ``cmd`` with its output to the file ``log`` (its folder made); the seconds it took.

    A non-zero exit prints the log's last lines to stderr and raises ``ChildProcessError`` naming
    the log. When ``cancel`` is set meanwhile, the process is terminated."""
    os.makedirs(osp.dirname(log) or '.', exist_ok=True)
    start = time.time()
    with open(log, 'w') as f:
        f.write('$ ' + ' '.join(cmd) + '\n')
        f.flush()
        proc = subprocess.Popen(list(cmd), stdout=f, stderr=subprocess.STDOUT, env=env)
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    proc.terminate()
                    proc.wait()
                    raise _Cancelled(what) from None
            except BaseException:  # KeyboardInterrupt: the child goes too
                proc.terminate()
                proc.wait()
                raise
    if rc != 0:
        what = what or ' '.join(cmd)
        tail = log_tail(log).rstrip()
        text = f'--- {what}: the last lines of {log}:\n{tail}\n---'
        if stages is not None:
            stages.line(text, error=True)
        else:
            print(text, file=sys.stderr, flush=True)
        raise ChildProcessError(f'{what} failed (exit status {rc}); its log is {log}')
    return time.time() - start


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint named in mmengine's ``<work_dir>/last_checkpoint``."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such file (the training saved no checkpoint)')
    with open(path) as f:
        return f.read().strip()


def train_and_test(config: str, work_dir: str, cfg_options: Sequence[str] = (), reuse: bool = False,
                   stages: Optional[Stages] = None, env: Optional[dict] = None,
                   cancel: Optional[threading.Event] = None, label: Optional[str] = None) -> dict:
    """``uqseg train`` ``config`` into ``work_dir``, ``uqseg test`` its last checkpoint, return the test
    metrics (logs ``train.log`` / ``test.log`` there). With ``reuse``, a finished run's metrics are
    read instead (a seed study resumes). ``label`` names the run in the stage lines."""
    out = osp.join(work_dir, METRICS_FILE)
    if not (reuse and osp.isfile(out)):
        stages = stages or Stages()
        name = label or config_name(config)
        opts = ['--cfg-options', *cfg_options] if cfg_options else []
        if cancel is not None and cancel.is_set():
            raise _Cancelled(name)
        stages.run(f'train {name}', uqseg_command('train', config, '--work-dir', work_dir, *opts),
                   osp.join(work_dir, 'train.log'), env=env, cancel=cancel, announce=True, training=name)
        ckpt = last_checkpoint(work_dir)
        stages.run(f'test {name}', uqseg_command('test', config, ckpt, '--work-dir', work_dir, *opts),
                   osp.join(work_dir, 'test.log'), env=env, cancel=cancel)
    with open(out) as f:
        return json.load(f)


def run_jobs(tasks: Sequence[Callable[[Optional[threading.Event]], object]], jobs: int,
             stages: Optional[Stages] = None) -> list:
    """Call every ``task(cancel)``, ``jobs`` at a time (in threads; each runs its subprocesses), and
    return their results in order. The first failure stops the others and is raised."""
    if jobs <= 1:
        return [task(None) for task in tasks]
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(task, cancel) for task in tasks]
        pending = set(futures)
        try:
            while True:
                done, pending = wait(futures, timeout=2, return_when=FIRST_EXCEPTION)
                if not pending or any(f.exception() is not None for f in done):
                    break
                if stages is not None:
                    stages.show_status()
        finally:
            if pending:
                cancel.set()
                for f in pending:
                    f.cancel()
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    real = [e for e in errors if not isinstance(e, _Cancelled)]
    if errors:
        raise (real or errors)[0]
    return [f.result() for f in futures]


def seed_runs(configs: Sequence[str], seeds: Sequence[int], work_dir: str, cfg_options: Sequence[str] = (),
              jobs: int = 1, stages: Optional[Stages] = None) -> dict:
    """Train and test every config once per seed (``<work_dir>/seed<N>/<config>``, finished runs
    reused), ``jobs`` runs at once; ``{config name: {seed: test metrics}}``."""
    stages = stages or Stages()
    env = job_env(jobs)
    pairs = [(seed, config) for seed in seeds for config in configs]

    def task(seed, config):
        name = config_name(config)
        return lambda cancel: train_and_test(config, osp.join(work_dir, f'seed{seed}', name),
                                             [*cfg_options, f'randomness.seed={seed}'], reuse=True, stages=stages,
                                             env=env, cancel=cancel, label=f'{name} (seed {seed})')

    results = run_jobs([task(seed, config) for seed, config in pairs], jobs, stages)
    runs: dict = {}
    for (seed, config), metrics in zip(pairs, results):
        runs.setdefault(config_name(config), {})[seed] = metrics
    return runs


def _sets(metrics: dict) -> list[str]:
    sets = []
    for key in metrics:
        name = key.rsplit('/', 1)[0]
        if '/' in key and name not in sets:
            sets.append(name)
    return sets


def table(results: dict) -> str:
    """The demo table: per test set and config, the :data:`COLUMNS` of its test metrics."""
    sets = []
    for metrics in results.values():
        sets += [s for s in _sets(metrics) if s not in sets and f'{s}/ECE' in metrics]
    width = max(len(c) for c in results) + 2
    head = f'{"set":<10} {"method":<{width}}' + ''.join(f'{label:>8}' for _, label in COLUMNS)
    lines = [head, '-' * len(head)]
    for name in sets:
        for cfg, metrics in results.items():
            vals = ''.join(f'{metrics.get(f"{name}/{key}", float("nan")):>8.4f}' for key, _ in COLUMNS)
            lines.append(f'{name:<10} {cfg:<{width}}{vals}')
    return '\n'.join(lines)


def calibration_verdict(results: dict) -> list[str]:
    """One line per config after the first (the baseline): the test sets on which its ECE and its OE
    are lower than the baseline's."""
    names = list(results)
    base = results[names[0]]
    lines = []
    for name in names[1:]:
        parts = []
        for key in ('ECE', 'OE'):
            sets = [s for s in _sets(base) if f'{s}/{key}' in base
                    and results[name].get(f'{s}/{key}', np.inf) < base[f'{s}/{key}']]
            parts.append(f'lower {key} on {", ".join(sets) if sets else "no set"}')
        lines.append(f'{name} vs {names[0]}: ' + '; '.join(parts))
    return lines


def seed_table(runs: dict, seeds: Sequence[int]) -> tuple[str, dict]:
    """Markdown table of mean +- std over seeds and paired differences to the first config."""
    names = list(runs)
    base = names[0]
    sets = [s for s in _sets(runs[base][seeds[0]])]
    rows, data = [], {}
    head = ('| set | method | ' + ' | '.join(label for _, label in COLUMNS) + ' |\n|'
            + '---|' * (2 + len(COLUMNS)))
    for s in sets:
        for name in names:
            cells = []
            for key, _ in COLUMNS:
                v = np.array([runs[name][sd].get(f'{s}/{key}', np.nan) for sd in seeds])
                data[f'{name}/{s}/{key}'] = v.tolist()
                cell = f'{np.mean(v):.4f} +- {np.std(v, ddof=1):.4f}' if len(v) > 1 else f'{v[0]:.4f}'
                if name != base:
                    d = v - np.array([runs[base][sd].get(f'{s}/{key}', np.nan) for sd in seeds])
                    cell += f'<br>diff {np.mean(d):+.4f} +- {np.std(d, ddof=1) if len(d) > 1 else 0:.4f}'
                    cell += f' ({int((d < 0).sum())}/{len(d)} < 0)'
                cells.append(cell)
            rows.append(f'| {s} | {name} | ' + ' | '.join(cells) + ' |')
    return head + '\n' + '\n'.join(rows), data


def write_report(work_dir: str, stem: str, md: str, data: dict) -> None:
    """``<work_dir>/<stem>.md`` (the table) and ``<stem>.json`` (its numbers)."""
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, f'{stem}.md'), 'w') as f:
        f.write(md + '\n')
    with open(osp.join(work_dir, f'{stem}.json'), 'w') as f:
        json.dump(data, f, indent=1)


def collect_pictures(run_dirs: dict, dest: str) -> list[str]:
    """Copy the PNGs of each run's last test (``<run dir>/<timestamp>/uq_plots/``) into ``dest`` as
    ``<picture>_<run name>.png`` (the runs' pictures of one set side by side); the files written."""
    os.makedirs(dest, exist_ok=True)
    written = []
    for name, run_dir in run_dirs.items():
        folders = sorted(glob.glob(osp.join(run_dir, '*', 'uq_plots')))
        if not folders:
            continue
        for png in sorted(glob.glob(osp.join(folders[-1], '*.png'))):
            target = osp.join(dest, f'{osp.splitext(osp.basename(png))[0]}_{name}.png')
            shutil.copyfile(png, target)
            written.append(target)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--configs', nargs='+', default=list(DEFAULT_CONFIGS), metavar='CONFIG',
                        help='config files or shipped names, the baseline first (default: bce_sod_demo aslp_sod_demo)')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='folder of the runs (default work_dirs/demo)')
    parser.add_argument('--iters', type=int, metavar='N',
                        help="train N iterations instead of the configs' schedule (1,200)")
    parser.add_argument('--jobs', type=int, metavar='N',
                        help='trainings at once (default: the CPU cores, at most one per config)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='passed to uqseg train and uqseg test')
    parser.add_argument('--seeds', nargs='+', type=int, help='the seed study: every config once per seed')


def run(args: argparse.Namespace) -> dict:
    """The demo; ``{'results': {config: test metrics}, 'table', 'pictures', 'seconds'}`` (the seed
    study: ``{'runs', 'table'}``)."""
    if args.iters is not None and args.iters < 1:
        raise ValueError(f'--iters {args.iters}: must be at least 1')
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f'--jobs {args.jobs}: must be at least 1')
    start = time.time()
    configs = [find_config(c) for c in args.configs]
    names = [config_name(c) for c in configs]
    if len(set(names)) < len(names):
        raise ValueError(f'--configs {" ".join(args.configs)}: two configs of one name would share a work dir')
    opts = list(args.cfg_options) + ([f'train_cfg.max_iters={args.iters}'] if args.iters else [])
    runs_at_once = args.jobs or max(1, min(len(configs) * len(args.seeds or [0]), usable_cpus()))
    env = job_env(runs_at_once)
    iters = args.iters or read_config(configs[0]).train_cfg.max_iters
    stages = Stages(None if args.seeds else 1 + 2 * len(configs))
    print(f'uqseg demo: {", ".join(names)} on the synthetic SOD data in {DATA_ROOT}, {iters} iterations each, '
          f'{runs_at_once} at once with OMP_NUM_THREADS={env["OMP_NUM_THREADS"]}; runs in {args.work_dir}', flush=True)
    tag = stages.tag()
    seconds = write_stamped(DATA_ROOT, make_demo_data)
    stages.line(f'{tag}data: {DATA_ROOT} ' + ('already there' if seconds is None else f'made in {seconds:.0f} s'))
    if args.seeds:
        runs = seed_runs(configs, args.seeds, args.work_dir, opts, runs_at_once, stages)
        md, data = seed_table(runs, args.seeds)
        write_report(args.work_dir, 'seeds', md, data)
        print(f'\nSeeds {args.seeds}: mean +- std; paired difference to {names[0]} '
              f'({osp.join(args.work_dir, "seeds.md")})\n{md}', flush=True)
        return dict(runs=runs, table=md)
    run_dirs = {name: osp.join(args.work_dir, name) for name in names}
    tasks = [lambda cancel, c=c, n=n: train_and_test(c, run_dirs[n], opts, stages=stages, env=env, cancel=cancel)
             for c, n in zip(configs, names)]
    results = dict(zip(names, run_jobs(tasks, runs_at_once, stages)))
    out = table(results)
    summary = osp.join(args.work_dir, 'summary.txt')
    with open(summary, 'w') as f:
        f.write(out + '\n')
    pictures = osp.join(args.work_dir, 'pictures')
    written = collect_pictures(run_dirs, pictures)
    elapsed = time.time() - start
    print(f'\nPooled pixel calibration (10 bins, top-label; ECE, OE: lower is better) and SOD scores on the '
          f'demo test sets ({summary}):\n{out}\n' + '\n'.join(calibration_verdict(results)), flush=True)
    print(f'Pictures (reliability diagrams, risk-coverage curves per set): {len(written)} in {pictures}/', flush=True)
    print(f'uqseg demo: done in {elapsed / 60:.1f} min', flush=True)
    return dict(results=results, table=out, pictures=written, seconds=elapsed)
