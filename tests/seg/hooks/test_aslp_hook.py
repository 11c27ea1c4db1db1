"""ASLPHook: the alpha update rule applied through the hook on hand-worked cases, Acc_val read from the
validation metrics, and the checks before training (no Runner)."""
import math
import types

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import BaseLoop
from mmengine.structures import PixelData
from mmseg.registry import HOOKS, METRICS, MODELS
from mmseg.structures import SegDataSample

import uqseg  # noqa: F401
from uqseg.seg.hooks.aslp_hook import ASLPHook, combine_sample_updates, num_train_samples

pytestmark = pytest.mark.usefixtures('one_thread')


def _approx(values):
    return pytest.approx(values, abs=1e-6)  # alphas are float32


class _Model(nn.Module):
    def __init__(self, mode='expected'):
        super().__init__()
        self.decode_head = MODELS.build(dict(
            type='ASLPHead', num_samples=5, head=dict(type='FCNHead', in_channels=4, channels=4, num_convs=1,
                                                      loss_decode=dict(type='SCBCELoss', mode=mode))))


class _Runner:
    """The parts of mmengine's Runner that ASLPHook uses."""
    count = 0

    def __init__(self, model, max_iters=60):
        _Runner.count += 1
        self.model = model
        self.iter = 0
        self.max_iters = max_iters
        self.message_hub = MessageHub.get_instance(f'test_aslp_hook_{_Runner.count}')
        self.logger = MMLogger.get_instance('test_aslp_hook')
        self._train_loop = None
        self._val_loop = object()
        self._resume = False


def _train_batch(model):
    """Two images, sample_idx 3 and 1, one row of two pixels each, logits at label size.

    Image at idx 3: labels [1, 0], logits [2, -2] -> (2y - 1) z = [2, 2]   -> g = (beta/2) * 2 = 2
    Image at idx 1: labels [1, 1], logits [-1, 0] -> (2y - 1) z = [-1, 0]  -> g = -0.5
    """
    samples = []
    for i, lab in ((3, [1, 0]), (1, [1, 1])):
        s = SegDataSample(metainfo=dict(sample_idx=i))
        s.gt_sem_seg = PixelData(data=torch.tensor([[lab]]))
        samples.append(s)
    logits = torch.tensor([[[[2.0, -2.0]]], [[[-1.0, 0.0]]]])
    model.decode_head.train()
    model.decode_head.loss_by_feat(logits, samples)


def _validate(hook, runner, n_correct, n_total, set_name='held-out'):
    """One validation whose pixel accuracy on ``set_name`` is n_correct / n_total: the metrics the
    evaluator hands to after_val_epoch (with another set's accuracy and another metric beside it)."""
    metrics = {f'{set_name}/PixelAcc': n_correct / n_total, 'other-set/PixelAcc': 0.0, f'{set_name}/ECE': 0.3}
    hook.after_val_epoch(runner, metrics)


def _setup(mode='calibration', alpha=(0.0, 0.4, 0.0, 0.1, 0.0), **kw):
    model = _Model()
    with torch.no_grad():
        model.decode_head.alpha.copy_(torch.tensor(alpha))
    runner = _Runner(model)
    hook = HOOKS.build(dict(type='ASLPHook', mode=mode, eta=0.1, lam=10.0, alpha_max=0.45, warmup_iters=5,
                            val_set='held-out', **kw))
    hook.before_run(runner)
    hook.before_train(runner)
    return model, runner, hook


def _step(hook, runner, model, it):
    runner.iter = it
    _train_batch(model)
    hook.after_train_iter(runner, it, None, None)
    return model.decode_head.alpha.tolist()


def test_calibration_mode_hand_worked_through_the_hook():
    model, runner, hook = _setup()
    # warm-up (iterations 0..4): nothing changes, the batch statistics are dropped
    assert _step(hook, runner, model, 4) == _approx([0.0, 0.4, 0.0, 0.1, 0.0])
    assert model.decode_head.aslp_pop() is None
    # after warm-up but before the first validation: no Acc_val, no update (default)
    assert _step(hook, runner, model, 5) == _approx([0.0, 0.4, 0.0, 0.1, 0.0])
    # validation on 'held-out': 9 of 10 pixels right (the 'other-set' accuracy is not used)
    _validate(hook, runner, 9, 10)
    assert hook.acc_val == pytest.approx(0.9)
    assert runner.message_hub.get_scalar('val/aslp/acc_val').current() == pytest.approx(0.9)
    # R = 1 - alpha - 0.9: idx 3: R = 0 -> 0.1 + 0.1 * 2 = 0.3
    #                      idx 1: R = -0.3 -> 0.4 + 0.1 * (-0.5 + 10 * -0.3) = 0.05
    assert _step(hook, runner, model, 6) == _approx([0.0, 0.05, 0.0, 0.3, 0.0])
    hub = runner.message_hub
    assert hub.get_scalar('train/aslp/alpha_mean').current() == pytest.approx(0.35 / 5)
    assert hub.get_scalar('train/aslp/alpha_max').current() == pytest.approx(0.3)
    assert hub.get_scalar('train/aslp/at_cap').current() == 0.0
    assert hub.get_scalar('train/aslp/acc_val').current() == pytest.approx(0.9)
    # the cap: idx 3 R = 1 - 0.3 - 0.9 < 0 -> 0.3 + 0.1 * (2 - 2) = 0.3; run with a low Acc_val
    _validate(hook, runner, 1, 2)  # Acc_val 0.5: no penalty while alpha <= 0.5
    # idx 3: 0.3 + 0.2 = 0.5 -> capped at 0.45; idx 1: 0.05 - 0.05 = 0.0
    assert _step(hook, runner, model, 7) == _approx([0.0, 0.0, 0.0, 0.45, 0.0])
    assert hub.get_scalar('train/aslp/at_cap').current() == pytest.approx(1 / 5)


def test_conservative_mode_hand_worked_through_the_hook():
    model, runner, hook = _setup(mode='conservative')
    _validate(hook, runner, 19, 20)  # 0.95: best so far, R = 0
    assert _step(hook, runner, model, 5) == _approx([0.0, 0.35, 0.0, 0.3, 0.0])
    _validate(hook, runner, 9, 10)  # 0.9 < best 0.95: R = -0.05, penalty 10 * -0.05 = -0.5
    assert hook.acc_ref == pytest.approx(0.95)
    assert runner.message_hub.get_scalar('val/aslp/acc_ref').current() == pytest.approx(0.95)
    # idx 3: 0.3 + 0.1 * (2 - 0.5) = 0.45; idx 1: 0.35 + 0.1 * (-0.5 - 0.5) = 0.25
    assert _step(hook, runner, model, 6) == _approx([0.0, 0.25, 0.0, 0.45, 0.0])


def test_update_before_val_makes_penalty_free_steps():
    model, runner, hook = _setup(update_before_val=True)
    assert _step(hook, runner, model, 5) == _approx([0.0, 0.35, 0.0, 0.3, 0.0])


def test_state_travels_in_the_checkpoint_and_warmup_defaults_to_a_sixth():
    model, runner, hook = _setup(mode='conservative')
    _validate(hook, runner, 19, 20)
    _validate(hook, runner, 9, 10)
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    assert ckpt['uqseg_aslp'] == dict(acc_val=pytest.approx(0.9), acc_ref=pytest.approx(0.95), num_vals=2)
    other = ASLPHook(mode='conservative')
    other.after_load_checkpoint(runner, ckpt)
    runner.iter = 7  # resumed
    other.before_train(runner)
    assert (other.acc_val, other.acc_ref, other.num_vals) == (hook.acc_val, hook.acc_ref, 2)
    assert other.warmup_iters == round(60 * 5 / 30)
    fresh = ASLPHook()
    fresh.after_load_checkpoint(runner, ckpt)
    runner.iter = 0  # load_from (fine-tuning): a new run keeps nothing of the hook state
    fresh.before_train(runner)
    assert fresh.acc_val is None


def test_acc_val_is_the_pixel_acc_of_val_set_or_of_the_only_set():
    model, runner, hook = _setup()
    hook.after_val_epoch(runner, {'held-out/PixelAcc': 0.75, 'other-set/PixelAcc': 0.25})
    assert hook.acc_val == 0.75 and hook.num_vals == 1
    single = ASLPHook()  # val_set None: the one accuracy key of the validation
    single.after_val_epoch(runner, {'DUTS-TR-val/PixelAcc': 0.5, 'DUTS-TR-val/ECE': 0.1})
    assert single.acc_val == 0.5
    with pytest.raises(ValueError, match=r"no single Acc_val for val_set=None .*\['a/PixelAcc', 'b/PixelAcc'\]"):
        ASLPHook().after_val_epoch(runner, {'a/PixelAcc': 0.5, 'b/PixelAcc': 0.6})


def test_missing_or_nan_acc_val_and_missing_validation_raise():
    with pytest.raises(ValueError, match='sideways'):
        ASLPHook(mode='sideways')
    model, runner, hook = _setup()
    with pytest.raises(ValueError, match=r"no single Acc_val for val_set='held-out'.*\['other/PixelAcc'\]"):
        hook.after_val_epoch(runner, {'other/PixelAcc': 1.0})
    with pytest.raises(ValueError, match=r"no single Acc_val for val_set='held-out'.*PixelAccuracyMetric"):
        hook.after_val_epoch(runner, {'held-out/ECE': 0.1})
    with pytest.raises(ValueError, match='held-out/PixelAcc is nan: the validation had no valid pixel of that set'):
        hook.after_val_epoch(runner, {'held-out/PixelAcc': math.nan})
    assert hook.acc_val is None and hook.num_vals == 0
    runner._val_loop = None
    with pytest.raises(ValueError, match='needs validation runs'):
        hook.before_train(runner)

    class _Concat:
        pass
    _Concat.__name__ = 'ConcatDataset'
    with pytest.raises(ValueError, match='ConcatDataset'):
        num_train_samples(_Concat())


class _Loop(BaseLoop):
    """A train or val loop as far as ASLPHook.before_run looks at it."""

    def __init__(self, dataset, metrics=()):
        super().__init__(None, types.SimpleNamespace(dataset=dataset))
        self.evaluator = types.SimpleNamespace(metrics=list(metrics))

    def run(self):
        pass


def _runner_with_loops(val_metrics, val_dataset):
    runner = _Runner(_Model())
    train_set = list(range(5))
    runner._train_loop = _Loop(train_set)
    runner.train_dataloader = types.SimpleNamespace(dataset=train_set)
    runner._val_loop = _Loop(val_dataset, val_metrics)
    return runner


def test_before_run_checks_the_validation_measures_acc_val_of_val_set():
    acc, cal = METRICS.build(dict(type='PixelAccuracyMetric')), METRICS.build(dict(type='PixelCalibrationMetric'))
    held_out = types.SimpleNamespace(set_name='held-out')
    ASLPHook(val_set='held-out').before_run(_runner_with_loops([cal, acc], held_out))  # fine
    ASLPHook().before_run(_runner_with_loops([acc], held_out))  # one set: val_set may be left out
    with pytest.raises(ValueError, match=r"add dict\(type='PixelAccuracyMetric'\) to val_evaluator .*"
                                         r"\['PixelCalibrationMetric'\]"):
        ASLPHook(val_set='held-out').before_run(_runner_with_loops([cal], held_out))
    with pytest.raises(ValueError, match=r"val_set='held-uot' is not a set of the validation dataset "
                                         r"\(its sets: \['held-out'\]\)"):
        ASLPHook(val_set='held-uot').before_run(_runner_with_loops([acc], held_out))
    both = types.SimpleNamespace(datasets=[held_out, types.SimpleNamespace(set_name='ECSSD')])
    ASLPHook(val_set='held-out').before_run(_runner_with_loops([acc], both))
    with pytest.raises(ValueError, match=r"several sets \(\['ECSSD', 'held-out'\]\)"):
        ASLPHook().before_run(_runner_with_loops([acc], both))
    # and it sized the alpha state from the train set (5 samples)
    runner = _runner_with_loops([acc], held_out)
    ASLPHook(val_set='held-out').before_run(runner)
    assert runner.model.decode_head.aslp_num_samples == 5


def test_combine_sample_updates_averages_repeated_samples_in_one_process():
    idx = torch.tensor([4, 1, 4, 0])
    g = torch.tensor([1.0, -2.0, 3.0, 0.5])
    seen, g_mean = combine_sample_updates(idx, g, 6)
    assert seen.tolist() == [True, True, False, False, True, False]
    assert g_mean[[0, 1, 4]].tolist() == [0.5, -2.0, 2.0]
    seen, _ = combine_sample_updates(torch.zeros(0, dtype=torch.long), torch.zeros(0), 3)
    assert not seen.any()
    assert math.isfinite(float(g_mean.sum()))


def test_acc_val_is_found_behind_a_metric_prefix():
    model, runner, hook = _setup()
    hook.after_val_epoch(runner, {'acc/held-out/PixelAcc': 0.6, 'acc/other/PixelAcc': 0.2})
    assert hook.acc_val == 0.6


def test_before_run_requires_set_name_in_the_validation_pipeline():
    from mmseg.datasets.transforms import PackSegInputs
    acc = METRICS.build(dict(type='PixelAccuracyMetric'))
    unpacked = types.SimpleNamespace(set_name='held-out', pipeline=types.SimpleNamespace(
        transforms=[PackSegInputs(meta_keys=('img_path', 'ori_shape'))]))
    with pytest.raises(ValueError, match=r"does not pack 'set_name' \(meta_keys=\('img_path', 'ori_shape'\)\)"):
        ASLPHook(val_set='held-out').before_run(_runner_with_loops([acc], unpacked))
    packed = types.SimpleNamespace(set_name='held-out', pipeline=types.SimpleNamespace(
        transforms=[PackSegInputs(meta_keys=('img_path', 'set_name'))]))
    ASLPHook(val_set='held-out').before_run(_runner_with_loops([acc], packed))
