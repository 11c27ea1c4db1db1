"""End-to-end runs of mmengine's Runner on the demo data (CPU, a few iterations each): training,
validation, testing, resuming, the train / test scripts and a user config outside the repo."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.runner import Runner

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO, demo_cfg
from uqseg.engine.checkpoint import SafeCheckpointRunner, load_checkpoint_file

pytestmark = pytest.mark.slow


def test_short_training_run_validates_and_checkpoints(demo_root, tmp_path):
    cfg = demo_cfg(demo_root, str(tmp_path / 'run'), max_iters=4, val_interval=4, ckpt_interval=4)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert osp.isfile(tmp_path / 'run' / 'iter_4.pth')
    scalars = runner.message_hub.log_scalars
    for key in ('DUTS-TR-val/ECE', 'DUTS-TR-val/OE', 'DUTS-TR-val/MAE', 'DUTS-TR-val/maxF', 'DUTS-TR-val/S',
                'DUTS-TR-val/PixelAcc'):
        assert f'val/{key}' in scalars, key
    metrics = runner.test()
    for name in ('DUTS-TE', 'ECSSD', 'DTD'):
        for key in ('ECE', 'OE', 'MAE', 'maxF', 'S', 'meanE'):
            assert f'{name}/{key}' in metrics
        assert 0 <= metrics[f'{name}/ECE'] <= 1


def _final_state(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_resume_reaches_the_same_weights(demo_root, tmp_path):
    """SafeCheckpointRunner resumes on torch >= 2.6 (the allow-list, weights_only=True); resumed ==
    uninterrupted."""
    full = Runner.from_cfg(demo_cfg(demo_root, str(tmp_path / 'full'), max_iters=6))
    full.train()
    ref = _final_state(full)

    first = Runner.from_cfg(demo_cfg(demo_root, str(tmp_path / 'part'), max_iters=3, ckpt_interval=3))
    first.train()
    ckpt = str(tmp_path / 'part' / 'iter_3.pth')
    assert osp.isfile(ckpt)
    # the checkpoint holds more than tensors: plain torch.load refuses it on torch >= 2.6
    if tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2]) >= (2, 6):
        with pytest.raises(Exception, match='weights_only'):
            torch.load(ckpt)

    cfg = demo_cfg(demo_root, str(tmp_path / 'resumed'), max_iters=6)
    cfg.resume, cfg.load_from = True, ckpt
    resumed = SafeCheckpointRunner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 6
    got = _final_state(resumed)
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    # a stale run would differ: the resumed weights moved away from the checkpoint's
    start = load_checkpoint_file(ckpt)['state_dict']
    assert any(not torch.equal(start[k], got[k]) for k in start if start[k].is_floating_point())


def test_test_script_loads_a_checkpoint_and_saves_maps(demo_root, tmp_path):
    first = Runner.from_cfg(demo_cfg(demo_root, str(tmp_path / 'a'), max_iters=2, ckpt_interval=2))
    first.train()
    cmd = [sys.executable, osp.join(REPO, 'tools/test.py'), osp.join(REPO, 'configs/bce_sod_demo.py'),
           str(tmp_path / 'a' / 'iter_2.pth'), '--work-dir', str(tmp_path / 't'), '--out', str(tmp_path / 'maps'),
           '--cfg-options', *[f'test_dataloader.dataset.datasets.{i}.data_root={osp.join(demo_root, s)}'
                              for i, s in enumerate(('DUTS-TE', 'ECSSD', 'DTD'))]]
    subprocess.run(cmd, check=True, cwd=str(tmp_path), capture_output=True)
    metrics = json.load(open(tmp_path / 't' / 'test_metrics.json'))
    assert {'DUTS-TE/ECE', 'ECSSD/maxF', 'DTD/MAE'} <= set(metrics)
    assert len(os.listdir(tmp_path / 'maps' / 'DUTS-TE')) == 6
    assert len(os.listdir(tmp_path / 'maps' / 'DTD')) == 5


def test_nan_loss_stops_training_naming_the_iteration(demo_root, tmp_path):
    cfg = demo_cfg(demo_root, str(tmp_path / 'nan'), max_iters=5)
    cfg.model.decode_head.loss_decode.loss_weight = float('nan')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FloatingPointError, match=r'non-finite training loss at iteration 1 .*loss_ce=nan'):
        runner.train()


def test_config_outside_the_repo_with_custom_imports(demo_root, tmp_path):
    """A user's config: an mmseg:: base plus custom_imports=['uqseg'], run from another folder."""
    cfg_file = tmp_path / 'my_sod.py'
    cfg_file.write_text(textwrap.dedent(f'''
        _base_ = ['mmseg::_base_/models/fcn_r50-d8.py', 'mmseg::_base_/default_runtime.py',
                  'mmseg::_base_/schedules/schedule_20k.py']
        custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
        norm_cfg = dict(type='BN', requires_grad=True)
        model = dict(
            pretrained=None, data_preprocessor=dict(size=(64, 64)),
            backbone=dict(depth=18, stem_channels=16, base_channels=16, norm_cfg=norm_cfg),
            decode_head=dict(in_channels=128, channels=16, num_classes=2, out_channels=1, threshold=0.5,
                             norm_cfg=norm_cfg,
                             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True)),
            auxiliary_head=None)
        pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadSaliencyMask'),
                    dict(type='Resize', scale=(64, 64), keep_ratio=False),
                    dict(type='PackSegInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'set_name'))]
        val_pipeline = [pipeline[0], pipeline[2], pipeline[1], pipeline[3]]  # ground truth at full size
        train_dataloader = dict(batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
                                dataset=dict(type='SODDataset', layout='DUTS-TR', ann_file='train.txt',
                                             data_root={osp.join(demo_root, "DUTS-TR")!r}, pipeline=pipeline))
        val_dataloader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                              dataset=dict(type='SODDataset', layout='DUTS-TR', ann_file='val.txt',
                                           data_root={osp.join(demo_root, "DUTS-TR")!r}, pipeline=val_pipeline))
        val_evaluator = dict(type='PixelCalibrationMetric')
        train_cfg = dict(max_iters=3, val_interval=3)
        test_cfg = None
        default_hooks = dict(checkpoint=dict(interval=3), logger=dict(interval=1))
        env_cfg = dict(dist_cfg=dict(backend='gloo'))
    '''))
    code = ('import sys; from mmengine.config import Config; from mmengine.runner import Runner; '
            'assert "uqseg" not in sys.modules; '
            f'cfg = Config.fromfile({str(cfg_file)!r}); cfg.work_dir = "wd"; r = Runner.from_cfg(cfg); r.train(); '
            'print("VAL", r.message_hub.get_scalar("val/DUTS-TR/ECE").current())')
    env = dict(os.environ, PYTHONPATH='')
    out = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'VAL' in out.stdout
    assert osp.isfile(tmp_path / 'wd' / 'iter_3.pth')


def test_dist_train_script_two_processes(demo_root, tmp_path):
    """tools/dist_train.sh (torchrun) trains the demo config on 2 CPU processes (gloo)."""
    tr = osp.join(demo_root, 'DUTS-TR')
    env = dict(os.environ, PORT=str(29500 + os.getpid() % 1000),
               PATH=osp.dirname(sys.executable) + ':' + os.environ['PATH'])
    cmd = ['bash', osp.join(REPO, 'tools/dist_train.sh'), osp.join(REPO, 'configs/bce_sod_demo.py'), '2',
           '--work-dir', str(tmp_path / 'ddp'), '--cfg-options',
           f'train_dataloader.dataset.data_root={tr}', f'val_dataloader.dataset.data_root={tr}',
           'train_dataloader.batch_size=2', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
           'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']
    out = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert osp.isfile(tmp_path / 'ddp' / 'iter_2.pth')
    log = open(next((tmp_path / 'ddp').glob('*/*.log'))).read()
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log
    assert 'DUTS-TR-val/ECE' in log
