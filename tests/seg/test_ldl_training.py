"""Label distribution learning through the Runner: the EMA teacher is mmengine's moving average of
the student (checked against a hand-computed average), survives resume bit for bit and is saved
beside, not instead of, the student; the offline teacher is the checkpoint's model, frozen; with
teacher weight 0 LDL trains as cross-entropy; binary heads train; missing pieces are refused."""
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tests.helpers.cfg import demo_cfg, shapes_cfg
from uqseg.engine.checkpoint import SafeCheckpointRunner, load_checkpoint_file
from uqseg.engine.hooks import TEACHER_STATE_KEY

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('one_thread')]

ONLINE = 'configs/ldl_online_shapes_demo.py'
OFFLINE = 'configs/ldl_offline_shapes_demo.py'


class _Record(Hook):
    def __init__(self):
        self.params = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.params.append({k: v.detach().clone() for k, v in runner.model.named_parameters()})


def _hook(runner, name):
    return next(h for h in runner.hooks if type(h).__name__ == name)


def _online(root, work, iters=4, momentum=0.3, **kw):
    cfg = shapes_cfg(root, work, config=ONLINE, max_iters=iters, **kw)
    cfg.custom_hooks[0].momentum = momentum
    cfg.model.decode_head.loss_decode.warmup_iters = 0
    return cfg


def test_the_ema_teacher_is_the_hand_computed_average_of_the_student(shapes_root, tmp_path):
    runner = Runner.from_cfg(_online(shapes_root, str(tmp_path)))
    record = _Record()
    runner.register_hook(record, priority='LOWEST')
    runner.train()
    teacher = runner.model.teacher
    assert teacher is _hook(runner, 'EMATeacherHook').ema_model.module and not teacher.training
    want = dict(record.params[0])  # the first update copies the student
    for p in record.params[1:]:
        want = {k: (1 - 0.3) * want[k] + 0.3 * p[k] for k in want}
    got = dict(teacher.named_parameters())
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert not torch.equal(got['decode_head.conv_seg.weight'], record.params[-1]['decode_head.conv_seg.weight'])
    for (k, b), (_, s) in zip(teacher.named_buffers(), runner.model.named_buffers()):
        assert torch.equal(b, s), k  # BN statistics copied from the student
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not any(k.startswith('teacher') for k in runner.model.state_dict())
    ckpt = load_checkpoint_file(osp.join(str(tmp_path), 'iter_4.pth'))  # weights_only=True, the allow-list
    assert int(ckpt[TEACHER_STATE_KEY]['steps']) == 4
    for k, v in runner.model.state_dict().items():  # the student is the checkpoint's state_dict
        assert torch.equal(ckpt['state_dict'][k], v.cpu()), k


def test_resume_restores_the_teacher_bit_for_bit(shapes_root, tmp_path):
    def run(work, iters, resume_from=None):
        cfg = _online(shapes_root, str(tmp_path / work), iters=iters, val_interval=2, ckpt_interval=2)
        if resume_from:
            cfg.resume, cfg.load_from = True, resume_from
        runner = SafeCheckpointRunner.from_cfg(cfg)  # mmengine's own loader cannot resume on torch >= 2.6
        runner.train()
        return runner

    full = run('full', 4)
    run('part', 2)
    resumed = run('resumed', 4, str(tmp_path / 'part' / 'iter_2.pth'))
    tf, tr = full.model.teacher.state_dict(), resumed.model.teacher.state_dict()
    assert [k for k in tf if not torch.equal(tf[k], tr[k])] == []
    sf, sr = full.model.state_dict(), resumed.model.state_dict()
    assert [k for k in sf if not torch.equal(sf[k], sr[k])] == []
    hf, hr = _hook(full, 'EMATeacherHook').ema_model, _hook(resumed, 'EMATeacherHook').ema_model
    assert int(hf.steps) == int(hr.steps) == 4


def test_teacher_weight_zero_trains_as_cross_entropy(shapes_root, tmp_path):
    ce = Runner.from_cfg(shapes_cfg(shapes_root, str(tmp_path / 'ce'), max_iters=3))
    ce.train()
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'ldl'), config=ONLINE, max_iters=3)
    cfg.model.data_preprocessor.batch_augments = None
    cfg.model.decode_head.loss_decode.teacher_weight = 0.0
    ldl = Runner.from_cfg(cfg)
    ldl.train()
    a, b = ce.model.state_dict(), ldl.model.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)


def test_the_offline_teacher_is_the_checkpoint_model_frozen(shapes_root, tmp_path):
    ce = Runner.from_cfg(shapes_cfg(shapes_root, str(tmp_path / 'ce'), max_iters=2, ckpt_interval=2))
    ce.train()
    ckpt = str(tmp_path / 'ce' / 'iter_2.pth')
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'ldl'), config=OFFLINE, max_iters=3)
    cfg.custom_hooks[0].checkpoint = ckpt
    runner = Runner.from_cfg(cfg)
    runner.train()
    teacher = runner.model.teacher
    state = load_checkpoint_file(ckpt)['state_dict']
    for k, v in teacher.state_dict().items():
        if k != 'temperature':
            assert torch.equal(v.cpu(), state[k]), k  # unchanged by 3 iterations
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(runner.model.teacher_logits(x, (64, 64)),
                                   torch.nn.functional.interpolate(ce.model.eval()._forward(x), (64, 64),
                                                                   mode='bilinear', align_corners=False))


def test_binary_heads_train_online(demo_root, tmp_path):
    runner = Runner.from_cfg(demo_cfg(demo_root, str(tmp_path), max_iters=2, config='configs/ldl_online_sod_demo.py'))
    runner.train()
    assert runner.model.teacher is not None and runner.model.decode_head.out_channels == 1


def test_missing_teacher_and_wrong_model_are_refused(shapes_root, tmp_path):
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'a'), config=ONLINE, max_iters=1)
    cfg.custom_hooks = []
    with pytest.raises(RuntimeError, match='LDLEncoderDecoder has no teacher'):
        Runner.from_cfg(cfg).train()
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'b'), max_iters=1)
    cfg.custom_hooks = [dict(type='EMATeacherHook')]
    with pytest.raises(TypeError, match="EMATeacherHook needs model=dict\\(type='LDLEncoderDecoder'"):
        Runner.from_cfg(cfg).train()
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'c'), config=OFFLINE, max_iters=1)
    cfg.custom_hooks[0].checkpoint = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='the teacher checkpoint .*nope.pth'):
        Runner.from_cfg(cfg).train()


def test_a_teacher_checkpoint_of_another_architecture_is_refused(shapes_root, tmp_path):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from tests.helpers.cfg import REPO
    other = MODELS.build(Config.fromfile(f'{REPO}/configs/bce_sod_demo.py').model)
    torch.save({'state_dict': other.state_dict()}, str(tmp_path / 'sod.pth'))
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'w'), config=OFFLINE, max_iters=1)
    cfg.custom_hooks[0].checkpoint = str(tmp_path / 'sod.pth')
    with pytest.raises(ValueError, match=r'sod.pth does not fit the teacher LDLEncoderDecoder: size mismatch for '
                                         r'decode_head.conv_seg.weight.*give config= for a teacher of another'):
        Runner.from_cfg(cfg).train()


@pytest.mark.parametrize('config', [ONLINE, OFFLINE])
def test_testing_an_ldl_model_builds_no_teacher(shapes_root, tmp_path, config):
    """Testing needs neither the teacher nor the offline teacher's file (it may be elsewhere)."""
    runner = Runner.from_cfg(shapes_cfg(shapes_root, str(tmp_path / 'train'), config=ONLINE, max_iters=2,
                                        ckpt_interval=2))
    runner.train()
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'test'), config=config)
    if config == OFFLINE:
        cfg.custom_hooks[0].checkpoint = str(tmp_path / 'elsewhere.pth')
    cfg.load_from = str(tmp_path / 'train' / 'iter_2.pth')
    tester = SafeCheckpointRunner.from_cfg(cfg)
    metrics = tester.test()
    assert tester.model.teacher is None and metrics['test/mIoU'] >= 0


def test_an_ldl_model_needs_an_ldl_loss(shapes_root, tmp_path):
    cfg = shapes_cfg(shapes_root, str(tmp_path), max_iters=1)
    cfg.model.type = 'LDLEncoderDecoder'
    with pytest.raises(ValueError, match='has no LDLLoss in loss_decode'):
        Runner.from_cfg(cfg)
