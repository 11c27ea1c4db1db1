"""ASLP in mmengine's Runner on the demo data: checkpoint round trip, exact resume, logs, Acc_val from
the validation metrics, dump tool, config errors."""
import csv
import json
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO, demo_cfg
from uqseg.cli import invoke, main
from uqseg.cli.dump_alphas import dump_alphas
from uqseg.engine.checkpoint import SafeCheckpointRunner, load_checkpoint_strict
from uqseg.seg.hooks import ASLPHook

pytestmark = pytest.mark.slow
CONFIG = 'configs/aslp_sod_demo.py'


def _cfg(root, work_dir, max_iters, ckpt_interval=1000):
    # validation every 2 iterations, no warm-up and a large eta: alphas move within a few iterations
    cfg = demo_cfg(root, work_dir, max_iters=max_iters, val_interval=2, ckpt_interval=ckpt_interval,
                   config=CONFIG)
    cfg.custom_hooks[-1].warmup_iters = 0
    cfg.custom_hooks[-1].eta = 0.05
    # sample mode: the exact resume then also covers the Bernoulli draws (ResumeRandomStateHook)
    cfg.model.decode_head.loss_decode.mode = 'sample'
    return cfg


def _hook(runner):
    return next(h for h in runner.hooks if isinstance(h, ASLPHook))


@pytest.fixture(scope='module')
def runs(demo_root, tmp_path_factory):
    """An uninterrupted 6-iteration run, a 3-iteration run with a checkpoint, and its resumption."""
    tmp = tmp_path_factory.mktemp('aslp_runs')
    full = Runner.from_cfg(_cfg(demo_root, str(tmp / 'full'), 6))
    full.train()
    part = Runner.from_cfg(_cfg(demo_root, str(tmp / 'part'), 3, ckpt_interval=3))
    part.train()
    ckpt = str(tmp / 'part' / 'iter_3.pth')
    cfg = _cfg(demo_root, str(tmp / 'resumed'), 6)
    cfg.resume, cfg.load_from = True, ckpt
    resumed = SafeCheckpointRunner.from_cfg(cfg)
    resumed.train()
    return dict(full=full, part=part, resumed=resumed, ckpt=ckpt, tmp=tmp)


def test_alpha_state_round_trips_through_a_checkpoint(runs):
    ckpt = torch.load(runs['ckpt'], weights_only=False)
    saved = ckpt['state_dict']['decode_head.alpha']
    assert saved.shape == (20,)  # sized from the 20-image train set of the test data
    assert (saved > 0).any()
    # the hook's validation state travels too (Acc_val of the validation at iteration 2)
    assert ckpt['uqseg_aslp']['num_vals'] == 1 and 0 < ckpt['uqseg_aslp']['acc_val'] <= 1
    # loading it into a fresh (unsized) model restores the alphas exactly
    from mmseg.registry import MODELS
    cfg = _cfg('unused', 'unused', 1)
    model = MODELS.build(cfg.model)
    assert model.decode_head.alpha.numel() == 0
    load_checkpoint_strict(model, runs['ckpt'])
    assert torch.equal(model.decode_head.alpha, saved)


def test_resumed_run_ends_with_the_same_alphas_and_weights(runs):
    full, resumed = runs['full'], runs['resumed']
    assert resumed.iter == 6
    a_full, a_res = full.model.decode_head.alpha, resumed.model.decode_head.alpha
    assert (a_full > 0).sum() >= 8
    assert torch.equal(a_full, a_res)
    ref, got = full.model.state_dict(), resumed.model.state_dict()
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    assert _hook(full).state_dict() == _hook(resumed).state_dict()
    # not trivially equal: the resumed run moved the alphas away from the checkpoint's
    start = torch.load(runs['ckpt'], weights_only=False)['state_dict']['decode_head.alpha']
    assert not torch.equal(start, a_res)


def test_alpha_statistics_and_acc_val_are_logged(runs):
    scalars = runs['full'].message_hub.log_scalars
    for key in ('train/aslp/alpha_mean', 'train/aslp/alpha_max', 'train/aslp/at_cap', 'train/aslp/acc_val',
                'val/aslp/acc_val', 'val/DUTS-TR-val/ECE', 'val/DUTS-TR-val/PixelAcc'):
        assert key in scalars, key
    # Acc_val is the validation's PixelAccuracyMetric result on the held-out split
    assert scalars['val/aslp/acc_val'].current() == scalars['val/DUTS-TR-val/PixelAcc'].current()
    assert _hook(runs['full']).acc_val == scalars['val/DUTS-TR-val/PixelAcc'].current()
    alpha = runs['full'].model.decode_head.alpha
    assert scalars['train/aslp/alpha_mean'].current() == pytest.approx(float(alpha.double().mean()))
    assert scalars['train/aslp/alpha_max'].current() == pytest.approx(float(alpha.max()))
    log = open(next(p for p in sorted((runs['tmp'] / 'full').rglob('*.log')))).read()
    assert 'aslp/alpha_mean' in log and 'aslp/acc_val' in log and 'first alpha update at iteration 3' in log


def test_dump_alphas_command_lists_the_checkpoint_alphas(runs, demo_root, tmp_path, capsys):
    out = tmp_path / 'alphas'
    root = osp.join(demo_root, 'DUTS-TR')
    # the config by its shipped name, as a pip user gives it
    report = invoke(['dump-alphas', runs['ckpt'], 'aslp_sod_demo', '--out', str(out), '--top', '4',
                     '--cfg-options', f'train_dataloader.dataset.data_root={root}'])
    assert '20/20' in capsys.readouterr().err  # the progress bar over the training set
    rows = list(csv.DictReader(open(out / 'alphas.csv')))
    saved = torch.load(runs['ckpt'], weights_only=False)['state_dict']['decode_head.alpha']
    assert len(rows) == 20
    values = [float(r['alpha']) for r in rows]
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx(float(saved.max()))
    for r in rows:
        assert float(r['alpha']) == pytest.approx(float(saved[int(r['sample_idx'])]))
        assert osp.isfile(r['img_path']) and r['img_path'].startswith(root)
    info = json.load(open(out / 'alphas.json'))
    assert info['count'] == 20 and info['iter'] == 3 and info['alpha_max'] == pytest.approx(0.49)
    assert osp.samefile(info['config'], osp.join(REPO, CONFIG))
    assert report['decode_head']['mean'] == pytest.approx(float(saved.double().mean()))
    assert (out / 'alphas_hist.png').stat().st_size > 1000 and (out / 'alphas_top.png').stat().st_size > 1000
    options = {'train_dataloader.dataset.data_root': root, 'train_dataloader.dataset.ann_file': 'val.txt'}
    with pytest.raises(ValueError, match='has 20 values but the training set .* has 4 images'):
        dump_alphas(runs['ckpt'], osp.join(REPO, CONFIG), str(out), cfg_options=options, progress=False)
    with pytest.raises(SystemExit) as e:  # the command: one line, exit status 1
        main(['dump-alphas', runs['ckpt'], osp.join(REPO, CONFIG), '--out', str(out), '--no-progress',
              '--cfg-options', *(f'{k}={v}' for k, v in options.items())])
    assert e.value.code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith('warning: ')]
    assert err[0].startswith('uqseg dump-alphas: error: ') and 'has 20 values but the training set' in err[0]
    assert 'Traceback' not in err


def test_checkpoint_of_another_training_set_fails_resume_and_restarts_alphas_on_load_from(runs, demo_root, tmp_path):
    ckpt = torch.load(runs['ckpt'], weights_only=False)
    ckpt['state_dict']['decode_head.alpha'] = torch.full((7,), 0.3)
    other = str(tmp_path / 'other.pth')
    torch.save(ckpt, other)
    cfg = _cfg(demo_root, str(tmp_path / 'resume'), 4)
    cfg.resume, cfg.load_from = True, other
    with pytest.raises(ValueError, match='cannot resume: the checkpoint holds 7 alphas.*has 20 samples'):
        SafeCheckpointRunner.from_cfg(cfg).train()
    # load_from (fine-tuning): the weights load, the alphas restart from init_alpha
    cfg = _cfg(demo_root, str(tmp_path / 'finetune'), 1)
    cfg.load_from = other
    runner = SafeCheckpointRunner.from_cfg(cfg)
    runner.train()
    assert runner.model.decode_head.alpha.numel() == 20 and float(runner.model.decode_head.alpha.max()) == 0.0


def test_missing_sample_idx_says_how_to_fix_the_config(demo_root, tmp_path):
    cfg = _cfg(demo_root, str(tmp_path / 'noidx'), 1)
    pack = cfg.train_dataloader.dataset.pipeline[-1]
    pack.meta_keys = tuple(k for k in pack.meta_keys if k != 'sample_idx')
    with pytest.raises(KeyError, match="Add 'sample_idx' to the meta_keys of PackSegInputs"):
        Runner.from_cfg(cfg).train()


def test_validation_without_pixel_accuracy_fails_before_training(demo_root, tmp_path):
    cfg = _cfg(demo_root, str(tmp_path / 'noacc'), 1)
    cfg.val_evaluator = [e for e in cfg.val_evaluator if e['type'] != 'PixelAccuracyMetric']
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"add dict\(type='PixelAccuracyMetric'\) to val_evaluator"):
        runner.train()
    assert runner.iter == 0
    cfg = _cfg(demo_root, str(tmp_path / 'typo'), 1)
    cfg.custom_hooks[-1].val_set = 'DUTS-TR-value'
    with pytest.raises(ValueError, match=r"val_set='DUTS-TR-value' is not a set of the validation dataset"):
        Runner.from_cfg(cfg).train()
