"""``uqseg train-members``: the members' states read from their work dirs (mmengine's last_checkpoint
and checkpoint files), the final checkpoint of a schedule, the ensemble config it writes (mmseg and
mmpretrain), a real 2-member training that a second call skips and a third resumes after a member
was killed, and a user's mistake as one line with exit status 1."""
from __future__ import annotations

import json
import os
import os.path as osp
import re
import runpy
import sys

import pytest
from mmengine.config import Config

from tests.helpers.cfg import REPO
from uqseg.cli import invoke, main
from uqseg.cli.configs import shipped_config
from uqseg.cli.train_members import (
    Member,
    check_seeds,
    default_work_dir,
    final_checkpoint_name,
    latest_checkpoint,
    member_command,
    member_config,
    member_plan,
    member_state,
    parse_cfg_options,
    write_ensemble_config,
)

pytestmark = pytest.mark.usefixtures('one_thread')


def _checkpoints(folder, steps, last=None, prefix='iter'):
    """A work dir as mmengine leaves it: ``<prefix>_<step>.pth`` files and ``last_checkpoint`` naming ``last``."""
    os.makedirs(folder, exist_ok=True)
    for step in steps:
        with open(osp.join(folder, f'{prefix}_{step}.pth'), 'wb') as f:
            f.write(b'\0')
    if last is not None:
        with open(osp.join(folder, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(str(folder), f'{prefix}_{last}.pth'))
    return str(folder)


def test_the_plan_reads_each_members_last_checkpoint(tmp_path):
    work = str(tmp_path / 'ens')
    _checkpoints(osp.join(work, 'seed0'), [2], last=2)  # finished
    _checkpoints(osp.join(work, 'seed1'), [1], last=1)  # killed after iteration 1
    _checkpoints(osp.join(work, 'seed2'), [])  # killed before its first checkpoint
    _checkpoints(osp.join(work, 'seed4'), [1, 2], last=1)  # iter_2.pth there but not the last one saved
    plan = member_plan('ce_shapes_demo', [0, 1, 2, 3, 4], work, {'train_cfg.max_iters': 2})
    assert plan == [Member(0, osp.join(work, 'seed0'), 'finished'), Member(1, osp.join(work, 'seed1'), 'resume'),
                    Member(2, osp.join(work, 'seed2'), 'start'), Member(3, osp.join(work, 'seed3'), 'start'),
                    Member(4, osp.join(work, 'seed4'), 'resume')]
    # the config's own schedule (800 iterations): every member is unfinished
    assert [m.state for m in member_plan('ce_shapes_demo', [0, 1], work)] == ['resume', 'resume']
    with pytest.raises(ValueError, match='seed0: its last checkpoint iter_2.pth lies past'):  # another schedule
        member_plan('ce_shapes_demo', [0], work, {'train_cfg.max_iters': 1})


def test_a_checkpoint_past_the_end_or_missing_is_refused_and_a_moved_folder_is_found(tmp_path):
    work = _checkpoints(tmp_path / 'seed0', [2], last=2)
    with pytest.raises(ValueError, match=r'seed0: its last checkpoint iter_2.pth lies past the end of the schedule '
                                         r'\(iter_1.pth\)'):
        member_state(work, 'iter_1.pth')
    moved = str(tmp_path / 'moved')
    os.rename(work, moved)  # last_checkpoint still names the old absolute path
    assert latest_checkpoint(moved) == osp.join(moved, 'iter_2.pth')
    assert member_state(moved, 'iter_2.pth') == 'finished'
    os.remove(osp.join(moved, 'iter_2.pth'))
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint names '.*iter_2.pth', which does not exist"):
        member_state(moved, 'iter_2.pth')
    assert latest_checkpoint(str(tmp_path / 'nothing')) is None


def test_the_final_checkpoint_of_a_schedule():
    assert final_checkpoint_name(member_config('ce_shapes_demo')) == 'iter_800.pth'
    assert final_checkpoint_name(member_config('bce_sod_demo')) == 'iter_1200.pth'
    assert final_checkpoint_name(member_config('cls/ce_fmnist_demo')) == 'epoch_3.pth'  # train_cfg by_epoch=True
    cfg = member_config('ce_shapes_demo', {'train_cfg.max_iters': 7,
                                           'default_hooks.checkpoint.filename_tmpl': 'step{}.pth'})
    assert final_checkpoint_name(cfg) == 'step7.pth'
    with pytest.raises(ValueError, match=r'x.py: default_hooks.checkpoint.save_last=False and train_cfg.max_iters=800 '
                                         'is not a multiple of its interval 300'):
        final_checkpoint_name(member_config('ce_shapes_demo', {'default_hooks.checkpoint.save_last': False,
                                                               'default_hooks.checkpoint.interval': 300}), 'x.py')
    with pytest.raises(ValueError, match='default_hooks.checkpoint.by_epoch=True with train_cfg.max_iters'):
        final_checkpoint_name(member_config('ce_shapes_demo', {'default_hooks.checkpoint.by_epoch': True}))
    with pytest.raises(ValueError, match='default_hooks.checkpoint is None'):
        final_checkpoint_name(member_config('ce_shapes_demo', {'default_hooks.checkpoint': None}))
    with pytest.raises(ValueError, match=r'train_cfg.max_epochs must be a positive integer, not 0'):
        final_checkpoint_name(member_config('cls/ce_fmnist_demo', {'train_cfg.max_epochs': 0}))


def test_seeds_options_and_the_commands():
    assert check_seeds((3, 1)) == [3, 1]
    with pytest.raises(ValueError, match='seed 1 repeated'):
        check_seeds([1, 2, 1])
    with pytest.raises(ValueError, match='-1 is not a seed'):
        check_seeds([-1])
    assert parse_cfg_options(['a.b=1', 'c=[1,2]', 'd=x']) == {'a.b': 1, 'c': [1, 2], 'd': 'x'}
    with pytest.raises(ValueError, match='each must be KEY=VALUE'):
        parse_cfg_options(['novalue'])
    assert default_work_dir(shipped_config('cls/ce_fmnist_demo')) == osp.join('./work_dirs', 'ce_fmnist_demo_members')
    cmd = member_command('c.py', Member(3, 'w/seed3', 'start'), ['a=1'])
    assert cmd == [sys.executable, '-m', 'uqseg', 'train', 'c.py', '--work-dir', 'w/seed3', '--cfg-options', 'a=1',
                   'randomness.seed=3']


def test_the_ensemble_config_of_segmentation_members(tmp_path):
    ckpts = [str(tmp_path / f'seed{s}' / 'iter_2.pth') for s in (0, 1, 2)]
    options = parse_cfg_options(['test_dataloader.dataset.datasets.0.data_root=/data/x', 'train_cfg.max_iters=2',
                                 'model.decode_head.dropout_ratio=0.3'])
    out = write_ensemble_config('ce_shapes_demo', ckpts, str(tmp_path / 'ensemble.py'), options, seeds=[0, 1, 2])
    base_path = shipped_config('ce_shapes_demo')
    with open(out) as f:
        text = f.read()
    assert f"_base_ = [{base_path!r}]" in text and f'uqseg test {out}' in text
    cfg, base = Config.fromfile(out), Config.fromfile(base_path)
    assert cfg.model.type == 'EnsembleSegmentor' and cfg.model.data_preprocessor is None
    assert [m['checkpoint'] for m in cfg.model.members] == ckpts
    assert all(m['config'] == base_path and m['cfg_options'] == options for m in cfg.model.members)
    assert 'backbone' not in cfg.model  # _delete_: nothing of the single model's dict is left
    # the base's test pipeline and settings stay, with the options that changed them
    assert cfg.test_pipeline == base.test_pipeline and cfg.test_evaluator == base.test_evaluator
    assert cfg.test_dataloader.dataset.datasets[0].data_root == '/data/x'
    assert cfg.test_dataloader.dataset.datasets[1] == base.test_dataloader.dataset.datasets[1]
    assert cfg.default_scope == 'mmseg'


def test_the_ensemble_config_of_classification_members(tmp_path):
    ckpts = [str(tmp_path / f'seed{s}' / 'epoch_3.pth') for s in (4, 5)]
    out = write_ensemble_config('cls/ce_fmnist_demo', ckpts, str(tmp_path / 'ensemble.py'))
    cfg, base = Config.fromfile(out), Config.fromfile(shipped_config('cls/ce_fmnist_demo'))
    assert cfg.default_scope == 'mmpretrain' and cfg.model.type == 'EnsembleClassifier'
    assert cfg.model.members == [dict(config=shipped_config('cls/ce_fmnist_demo'), checkpoint=c) for c in ckpts]
    assert cfg.test_dataloader == base.test_dataloader and cfg.test_evaluator == base.test_evaluator


def _tiny(shapes_root):
    """The shapes demo shrunk to 2 iterations on the small copy of its data, no validation, a checkpoint
    after each iteration (both kept); its test sets read from there too."""
    roots = ['train_dataloader.dataset', 'val_dataloader.dataset',
             *[f'test_dataloader.dataset.datasets.{i}' for i in range(3)]]
    return ['--cfg-options', *[f'{loader}.data_root={shapes_root}' for loader in roots],
            'train_dataloader.batch_size=2', 'train_cfg.max_iters=2', 'train_cfg.val_interval=1000',
            'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=2']


@pytest.mark.slow
def test_train_two_members_skip_them_then_resume_a_killed_one(shapes_root, tmp_path, capsys):
    work = str(tmp_path / 'ens')
    argv = ['train-members', 'ce_shapes_demo', '--members', '2', '--work-dir', work, *_tiny(shapes_root)]
    result = invoke([*argv, '--jobs', '2'])  # both at once
    out = capsys.readouterr().out
    assert [m.state for m in result['plan']] == ['start', 'start'] and '2 at once' in out
    for seed in (0, 1):
        log = osp.join(work, f'seed{seed}', 'train.log')
        assert re.search(rf'^\[[12]/2\] train seed {seed}: done in \d+ s \(log: {re.escape(log)}\)$', out, re.M)
        with open(log) as f:
            text = f.read()
        assert f'randomness.seed={seed}' in text and 'Iter(train) [2/2]' in text
    assert 'Iter(train)' not in out  # the trainings' output went to their logs
    ckpts = [osp.join(work, f'seed{s}', 'iter_2.pth') for s in (0, 1)]
    assert [r['checkpoint'] for r in result['members']] == ckpts and all(r['finished'] for r in result['members'])
    with open(osp.join(work, 'members.json')) as f:
        record = json.load(f)
    assert record['members'] == result['members'] and record['final_checkpoint'] == 'iter_2.pth'
    assert [r['seed'] for r in record['members']] == [0, 1]
    assert result['ensemble'] == osp.join(work, 'ensemble.py') and f'ensemble config: {result["ensemble"]}' in out
    cfg = Config.fromfile(result['ensemble'])
    assert [m['checkpoint'] for m in cfg.model.members] == ckpts
    # what the user runs next: the ensemble tested on the test sets the options named
    metrics = invoke(['test', result['ensemble'], '--work-dir', str(tmp_path / 'test')])
    capsys.readouterr()
    assert {'test/mIoU', 'shift/mIoU', 'ood/mIoU', 'own/ood/OOD_AUROC_px'} <= set(metrics)

    # a second call trains nothing
    again = invoke(argv)
    out = capsys.readouterr().out
    assert [m.state for m in again['plan']] == ['finished', 'finished'] and again['members'] == result['members']
    assert f'seed 1: finished ({ckpts[1]}), skipped' in out and 'train seed' not in out

    # seed 1 killed after its first checkpoint: mmengine left iter_1.pth, named in last_checkpoint
    os.remove(ckpts[1])
    with open(osp.join(work, 'seed1', 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'seed1', 'iter_1.pth'))
    dry = invoke([*argv, '--dry-run'])
    out = capsys.readouterr().out
    assert [m.state for m in dry['plan']] == ['finished', 'resume'] and dry['ensemble'] is None
    assert 'seed 1: resume from iter_1.pth: ' in out and not osp.exists(ckpts[1])
    assert dry['commands'][1][-2:] == ['randomness.seed=1', f'load_from={osp.join(work, "seed1", "iter_1.pth")}']
    assert '--resume' in dry['commands'][1] and list(dry['commands']) == [1]
    resumed = invoke(argv)
    out = capsys.readouterr().out
    assert [m.state for m in resumed['plan']] == ['finished', 'resume']
    assert '[1/1] train seed 1 (resume from iter_1.pth): done' in out and 'train seed 0' not in out
    with open(osp.join(work, 'seed1', 'train.log')) as f:
        text = f.read()
    assert 'resumed epoch: 0, iter: 1' in text and 'Iter(train) [2/2]' in text and 'Iter(train) [1/2]' not in text
    assert osp.isfile(ckpts[1]) and resumed['members'][1]['finished']


def _main_error(argv, capsys) -> list[str]:
    """stderr lines of ``uqseg *argv``, which must exit with status 1 (Python warnings of imports left out)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 1
    return [line for line in capsys.readouterr().err.splitlines() if not line.startswith('warning: ')]


def test_user_mistakes_are_one_line_with_exit_status_1(tmp_path, capsys):
    work = str(tmp_path / 'w')
    err = _main_error(['train-members', 'no_such_config', '--work-dir', work], capsys)
    assert err[0].startswith('uqseg train-members: error: no_such_config: no such config file') and len(err) == 2
    err = _main_error(['train-members', 'ce_shapes_demo', '--members', '0', '--work-dir', work], capsys)
    assert err == ['uqseg train-members: error: --members 0: an ensemble needs at least one member',
                   'uqseg train-members: (add --debug for the traceback)']
    err = _main_error(['train-members', 'ce_shapes_demo', '--seeds', '0', '1', '0', '--work-dir', work], capsys)
    assert err[0] == ('uqseg train-members: error: --seeds 0 1 0: seed 0 repeated (two members of one seed are one '
                      'model twice)')
    err = _main_error(['train-members', 'ce_shapes_demo', '--jobs', '0', '--work-dir', work], capsys)
    assert err[0] == 'uqseg train-members: error: --jobs 0: must be at least 1'
    assert not osp.exists(work)


def test_help_is_the_usage_and_the_shim_runs_the_command(capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        main(['train-members', '--help'])
    text = capsys.readouterr().out
    assert e.value.code == 0 and '    uqseg train-members CONFIG --seeds' in text
    monkeypatch.setattr(sys, 'argv', ['tools/train_members.py', '--help'])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(osp.join(REPO, 'tools', 'train_members.py'), run_name='__main__')
    shim = capsys.readouterr().out
    assert e.value.code == 0 and shim.startswith('usage: tools/train_members.py')
    assert shim[shim.index('\n\n'):] == text[text.index('\n\n'):]  # the same description and options
