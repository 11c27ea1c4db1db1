"""``uqseg demo``: data, trainings and tests as ``uqseg`` subprocesses with their output in logs,
one line per stage, the table of the test metrics, the pictures; a failing stage names its log."""
from __future__ import annotations

import functools
import io
import json
import os.path as osp
import re
import subprocess
import sys
import threading

import pytest

from uqseg.cli import invoke
from uqseg.cli.demo import (
    COLUMNS,
    DATA_ROOT,
    Stages,
    calibration_verdict,
    job_env,
    run_jobs,
    run_logged,
    table,
    train_progress,
)
from uqseg.seg.datasets.demo_data import make_demo_data
from uqseg.seg.datasets.stamped import write_stamped

SMALL = functools.partial(make_demo_data, n_train=12, n_val=4, n_test=4, n_test2=4, n_ood=5)
TINY = ['--iters', '2', '--cfg-options', 'default_hooks.logger.interval=1']


@pytest.fixture
def demo_folder(tmp_path, monkeypatch):
    """A user's folder with a small complete copy of the demo data in ./data/demo."""
    monkeypatch.chdir(tmp_path)
    assert write_stamped(DATA_ROOT, SMALL, seed=1) is not None
    return tmp_path


@pytest.mark.slow
def test_demo_prints_one_line_per_stage_and_the_table_of_the_tests(demo_folder, capsys):
    result = invoke(['demo', *TINY])
    out = capsys.readouterr().out
    names = ['bce_sod_demo', 'aslp_sod_demo']
    assert list(result['results']) == names
    assert '[1/5] data: data/demo already there' in out
    for name in names:
        run_dir = osp.join('work_dirs', 'demo', name)
        for stage in ('train', 'test'):
            log = osp.join(run_dir, f'{stage}.log')
            assert re.search(rf'^\[[2-5]/5\] {stage} {name}: done in \d+ s \(log: {re.escape(log)}\)$', out, re.M)
        assert re.search(rf'^\[[23]/5\] train {name}: started', out, re.M)
        with open(osp.join(run_dir, 'train.log')) as f:
            assert train_progress(osp.join(run_dir, 'train.log')) == (2, 2) and 'Iter(train)' in f.read()
        with open(osp.join(run_dir, 'test_metrics.json')) as f:
            assert json.load(f) == result['results'][name]
    assert 'Iter(train)' not in out and 'mmengine' not in out  # the logs went to the files
    # the table: one row per set and config with the test metrics
    assert result['table'] in out and result['table'] == table(result['results'])
    with open(osp.join('work_dirs', 'demo', 'summary.txt')) as f:
        assert f.read().strip() == result['table']
    ece = result['results']['aslp_sod_demo']['ECSSD/ECE']
    row = next(line for line in result['table'].splitlines() if line.startswith('ECSSD') and 'aslp_sod_demo' in line)
    assert row.split()[2] == f'{ece:.4f}' and len(row.split()) == 2 + len(COLUMNS)
    assert calibration_verdict(result['results'])[0] in out
    # the pictures of both runs, side by side, and where they are
    pictures = {osp.basename(p) for p in result['pictures']}
    assert {f'reliability_DUTS-TE_{n}.png' for n in names} <= pictures
    assert all(osp.isfile(p) for p in result['pictures'])
    assert f'{len(pictures)} in work_dirs/demo/pictures/' in out


def test_the_verdict_names_the_sets_where_a_method_is_better_calibrated():
    results = {'bce': {'A/ECE': 0.05, 'A/OE': 0.04, 'B/ECE': 0.02, 'B/OE': 0.01},
               'aslp': {'A/ECE': 0.03, 'A/OE': 0.05, 'B/ECE': 0.01, 'B/OE': 0.005}}
    assert calibration_verdict(results) == ['aslp vs bce: lower ECE on A, B; lower OE on B']


def test_the_data_is_made_once_and_kept_while_complete(tmp_path):
    root = str(tmp_path / 'demo')
    assert write_stamped(root, SMALL) > 0
    assert write_stamped(root, SMALL) is None  # complete: kept
    assert sorted(p for p in ('DUTS-TR', 'DUTS-TE', 'ECSSD', 'DTD') if osp.isdir(osp.join(root, p))) == [
        'DTD', 'DUTS-TE', 'DUTS-TR', 'ECSSD']


def test_threads_are_shared_between_the_runs(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    assert job_env(2, cpus=2)['OMP_NUM_THREADS'] == '1' and job_env(2, cpus=16)['OMP_NUM_THREADS'] == '8'
    assert job_env(4, cpus=2)['OMP_NUM_THREADS'] == '1'
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert job_env(2, cpus=2)['OMP_NUM_THREADS'] == '3'  # the user's setting wins


def test_a_failing_stage_stops_the_others_and_names_its_log(tmp_path, capsys):
    stages = Stages(total=2)
    fail = [sys.executable, '-c', 'import sys; print("line 1"); print("the reason"); sys.exit(3)']
    slow = [sys.executable, '-c', 'import time; time.sleep(60)']
    logs = [str(tmp_path / 'a' / 'fail.log'), str(tmp_path / 'b' / 'slow.log')]
    started = threading.Event()

    def failing(cancel):
        started.wait(10)
        return stages.run('train a', fail, logs[0], cancel=cancel)

    def sleeping(cancel):
        started.set()
        return stages.run('train b', slow, logs[1], cancel=cancel)

    with pytest.raises(ChildProcessError, match=re.escape(f'train a failed (exit status 3); its log is {logs[0]}')):
        run_jobs([failing, sleeping], jobs=2)
    err = capsys.readouterr().err
    assert f'the last lines of {logs[0]}' in err and 'the reason' in err
    assert 'train b' not in capsys.readouterr().out  # stopped, not waited for


def test_run_logged_writes_the_output_to_the_log(tmp_path):
    log = str(tmp_path / 'x' / 'run.log')
    seconds = run_logged([sys.executable, '-c', 'import sys; print("out"); print("err", file=sys.stderr)'], log)
    with open(log) as f:
        text = f.read()
    assert seconds >= 0 and 'out\n' in text and 'err\n' in text and text.startswith('$ ')


@pytest.mark.slow
def test_a_failing_training_is_one_error_line_naming_its_log(demo_folder):
    proc = subprocess.run([sys.executable, '-m', 'uqseg', 'demo', '--configs', 'bce_sod_demo', '--iters', '1',
                           '--cfg-options', 'model.backbone.depth=7'], capture_output=True, text=True)
    log = osp.join('work_dirs', 'demo', 'bce_sod_demo', 'train.log')
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith('uqseg demo: error:')]
    assert lines == [f'uqseg demo: error: train bce_sod_demo failed (exit status 1); its log is {log}']
    assert f'the last lines of {log}' in proc.stderr and 'Traceback' not in proc.stderr.split('---')[-1]
    assert 'train bce_sod_demo: started' in proc.stdout


def test_an_unknown_config_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = subprocess.run([sys.executable, '-m', 'uqseg', 'demo', '--configs', 'bce_sod_dem'], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and proc.stderr.startswith('uqseg demo: error: bce_sod_dem: no such config file')
    assert not osp.exists(tmp_path / 'data')  # refused before any work


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_trainings_iterations_show_on_a_status_line(tmp_path):
    log = tmp_path / 'train.log'
    log.write_text('mmengine - INFO - Iter(train) [  30/1200]  lr: 2e-3\nmmengine - INFO - Iter(train) [  60/1200]\n')
    screen = _Terminal()
    stages = Stages(total=3, stream=screen)
    stages.training = {'bce_sod_demo': str(log), 'aslp_sod_demo': str(tmp_path / 'none.log')}
    stages.show_status()
    assert screen.getvalue().endswith('training: bce_sod_demo 60/1200, aslp_sod_demo starting')
    stages.line('[2/3] train bce_sod_demo: done')
    assert screen.getvalue().endswith('\r\033[K[2/3] train bce_sod_demo: done\n')  # the status line replaced
    plain = io.StringIO()
    Stages(stream=plain).show_status()
    assert plain.getvalue() == ''
