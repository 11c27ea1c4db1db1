"""Resuming from a checkpoint written at a validation iteration (checkpoint interval == validation
interval, the usual mmseg set-up) ends on the uninterrupted run's weights and hook state, bit for
bit: ASLP (alphas, Acc_val, validation count) and plain BCE (dropout draws)."""
import pytest
import torch
from mmengine.runner import Runner

import uqseg.engine.hooks.resume_random_state_hook as resume_hook
from tests.helpers.cfg import demo_cfg
from uqseg.engine.checkpoint import SafeCheckpointRunner, load_checkpoint_file

pytestmark = pytest.mark.slow


def _cfg(root, work_dir, iters, config):
    return demo_cfg(root, work_dir, max_iters=iters, val_interval=2, ckpt_interval=2, config=config)


def _runs(root, tmp, config):
    full = Runner.from_cfg(_cfg(root, str(tmp / 'full'), 6, config))
    full.train()
    part = Runner.from_cfg(_cfg(root, str(tmp / 'part'), 4, config))
    part.train()
    cfg = _cfg(root, str(tmp / 'resumed'), 6, config)
    cfg.resume, cfg.load_from = True, str(tmp / 'part' / 'iter_4.pth')  # written before validation 4
    resumed = SafeCheckpointRunner.from_cfg(cfg)
    resumed.train()
    return full, resumed


def _hook(runner, name):
    return next(h for h in runner.hooks if type(h).__name__ == name)


def _differing(a: Runner, b: Runner) -> list:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


@pytest.mark.parametrize('config', ['configs/aslp_sod_demo.py', 'configs/bce_sod_demo.py'])
def test_resume_at_a_validation_checkpoint_is_bit_exact(demo_root, tmp_path, config):
    full, resumed = _runs(demo_root, tmp_path, config)
    assert resumed.iter == full.iter == 6
    assert _differing(full, resumed) == []
    if 'aslp' in config:
        assert torch.equal(full.model.decode_head.alpha, resumed.model.decode_head.alpha)
        assert full.model.decode_head.alpha.max() > 0  # the alphas moved, so the check means something
        assert _hook(resumed, 'ASLPHook').state_dict() == _hook(full, 'ASLPHook').state_dict()
        assert _hook(full, 'ASLPHook').num_vals == 3


def test_without_the_redone_validation_the_resume_differs(demo_root, tmp_path, monkeypatch):
    """The failure the hook fixes: skipping validation 4 on resume loses an Acc_val and a draw."""
    monkeypatch.setattr(resume_hook, 'validates_at', lambda loop, it: False)
    full, resumed = _runs(demo_root, tmp_path, 'configs/aslp_sod_demo.py')
    assert _differing(full, resumed)
    assert _hook(resumed, 'ASLPHook').num_vals == _hook(full, 'ASLPHook').num_vals - 1


def test_validates_at_follows_the_train_loop(demo_root, tmp_path):
    cfg = demo_cfg(demo_root, str(tmp_path), max_iters=7, val_interval=3)
    # every 3 iterations, then every 2: mmengine switches when the *next* iteration reaches the
    # milestone (bisect on _iter + 1), so after iteration 4 the interval is already 2
    cfg.train_cfg.dynamic_intervals = [(5, 2)]
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner._val_loop = runner.build_val_loop(runner._val_loop)
    loop = runner.train_loop
    assert [it for it in range(1, 8) if resume_hook.validates_at(loop, it)] == [3, 4, 6, 7]


def _epoch_cfg(root, work_dir, epochs):
    cfg = demo_cfg(root, work_dir, config='configs/aslp_sod_demo.py')
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=1)
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    cfg.train_dataloader.dataset.ann_file = 'train.txt'
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=-1)
    cfg.log_processor = dict(by_epoch=True)
    cfg.param_scheduler = []
    return cfg


def test_epoch_based_resume_at_a_validation_checkpoint_is_bit_exact(demo_root, tmp_path):
    full = Runner.from_cfg(_epoch_cfg(demo_root, str(tmp_path / 'full'), 3))
    full.train()
    part = Runner.from_cfg(_epoch_cfg(demo_root, str(tmp_path / 'part'), 2))
    part.train()
    cfg = _epoch_cfg(demo_root, str(tmp_path / 'resumed'), 3)
    cfg.resume, cfg.load_from = True, str(tmp_path / 'part' / 'epoch_2.pth')
    resumed = SafeCheckpointRunner.from_cfg(cfg)
    resumed.train()
    assert resumed.epoch == full.epoch == 3
    assert _differing(full, resumed) == []
    assert _hook(resumed, 'ASLPHook').state_dict() == _hook(full, 'ASLPHook').state_dict()


def test_resume_from_a_checkpoint_written_after_its_validation_does_not_validate_again(demo_root, tmp_path):
    """With save_best, mmengine writes iter_N.pth again after validation N (and best_*.pth): such a
    checkpoint is marked validated, and resuming from it must not run validation N twice."""
    def cfg(work_dir, iters):
        c = _cfg(demo_root, str(tmp_path / work_dir), iters, 'configs/aslp_sod_demo.py')
        c.default_hooks.checkpoint.save_best = 'DUTS-TR-val/PixelAcc'
        c.default_hooks.checkpoint.rule = 'greater'
        return c
    full = Runner.from_cfg(cfg('full', 6))
    full.train()
    part = Runner.from_cfg(cfg('part', 4))
    part.train()
    best = next(p for p in (tmp_path / 'part').iterdir() if p.name.startswith('best_'))
    assert load_checkpoint_file(str(best))[resume_hook.KEY]['validated'] is True
    assert load_checkpoint_file(str(tmp_path / 'part' / 'iter_4.pth'))[resume_hook.KEY]['validated'] is True
    c = cfg('resumed', 6)
    c.resume, c.load_from = True, str(tmp_path / 'part' / 'iter_4.pth')
    resumed = SafeCheckpointRunner.from_cfg(c)
    resumed.train()
    assert _differing(full, resumed) == []
    assert _hook(resumed, 'ASLPHook').state_dict() == _hook(full, 'ASLPHook').state_dict()
