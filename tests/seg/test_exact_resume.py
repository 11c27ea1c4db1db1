"""Resuming from a checkpoint written at a validation iteration (checkpoint interval == validation
interval, the usual mmseg set-up) ends on the uninterrupted run's weights and hook state, bit for
bit: ASLP (alphas, Acc_val, validation count) and plain BCE (dropout draws)."""
import pytest
import torch
from mmengine.runner import Runner

import uqseg.seg.hooks.resume_random_state_hook as resume_hook
from tests.helpers.cfg import demo_cfg

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
    resumed = Runner.from_cfg(cfg)
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
