"""Safe and strict checkpoint loading (uqseg.engine.checkpoint): a checkpoint whose pickle would run
code (a harmless payload writing a marker file) is refused by mmengine's load_checkpoint after
``import uqseg`` and by every tool, naming the type and the opt-in, and loads with the opt-in;
importing uqseg changes no loader and no allow-list; every checkpoint the project writes (resume
with ASLP state, EMA teacher, TEDL stage, RNG states, calibrated T) loads through the allow-list
without it; a checkpoint that does not fit the config is an error naming the keys, and
``--partial-load`` proceeds."""
import contextlib
import os.path as osp
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO, demo_cfg, shapes_cfg
from uqseg.cli import invoke
from uqseg.engine.checkpoint import (
    CHECKPOINT_GLOBALS,
    HAS_ALLOW_LIST,
    CheckpointMismatchError,
    SafeCheckpointRunner,
    UnsafeCheckpointError,
    checkpoint_safe_globals,
    load_checkpoint_file,
    load_checkpoint_strict,
    load_state_dict_checked,
)
from uqseg.engine.hooks import TEACHER_STATE_KEY

pytestmark = pytest.mark.usefixtures('one_thread')
MARKER = 'payload_ran'
#: torch < 2.6 loads with weights_only=False by default (mmengine's own loader is not safe there)
TORCH_LOADS_ANYTHING = tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2]) < (2, 6)


def _write_marker(path: str) -> str:
    with open(path, 'w') as f:
        f.write('ran')
    return path


class Payload:
    """Unpickling this calls _write_marker(path): code from the file (harmless here)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return _write_marker, (self.path,)


def _payload_checkpoint(path, state_dict: dict) -> str:
    """A checkpoint that fits the model (``state_dict``) and carries the payload in its meta."""
    path = str(path)
    torch.save({'state_dict': state_dict, 'meta': {'note': Payload(osp.join(osp.dirname(path), MARKER))}}, path)
    return path


def _ran(path) -> bool:
    return osp.isfile(osp.join(osp.dirname(str(path)), MARKER))


def _refused(exc_info, path):
    text = str(exc_info.value)
    assert str(path) in text and '_write_marker' in text and '--trust-checkpoint' in text, text
    assert not _ran(path)


def _seg_model(config='configs/ce_shapes_demo.py', **decode_head):
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.model.decode_head.update(decode_head)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def _cls_model(config):
    from mmpretrain.registry import MODELS as CLS_MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        return CLS_MODELS.build(Config.fromfile(osp.join(REPO, config)).model)


# ---------------------------------------------------------------------------------------------- safety
@pytest.mark.skipif(not HAS_ALLOW_LIST, reason='torch < 2.5 has no process allow-list to change')
def test_importing_uqseg_changes_no_loader_and_no_allow_list():
    # the dependencies first: importing them adds torch's own entries (torch._dynamo's)
    code = ('import torch\nfrom mmengine.runner.checkpoint import CheckpointLoader\n'
            'import mmseg.models, mmseg.datasets, mmseg.evaluation, mmpretrain.models, mmpretrain.datasets\n'
            'before = (dict(CheckpointLoader._schemes), list(torch.serialization.get_safe_globals()))\n'
            'import uqseg, uqseg.seg, uqseg.cls\n'
            'after = (dict(CheckpointLoader._schemes), list(torch.serialization.get_safe_globals()))\n'
            'assert before == after, (before, after)\nprint("same")\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and 'same' in out.stdout, out.stderr[-2000:]


@pytest.mark.skipif(TORCH_LOADS_ANYTHING, reason="torch < 2.6: torch.load's default is weights_only=False")
def test_mmengine_load_checkpoint_refuses_a_payload_after_import_uqseg(tmp_path):
    model = _seg_model()
    path = _payload_checkpoint(tmp_path / 'payload.pth', model.state_dict())
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(model, path, map_location='cpu')
    assert not _ran(path)


def test_load_checkpoint_file_refuses_names_the_type_and_loads_with_trust(tmp_path):
    path = _payload_checkpoint(tmp_path / 'payload.pth', {'w': torch.ones(2)})
    # the process's own entry (torch >= 2.5; older torch unpickles through uqseg's ALLOW_LIST_PICKLE)
    own = torch.serialization.safe_globals([np.ndarray]) if HAS_ALLOW_LIST else contextlib.nullcontext()
    with own:
        with pytest.raises(UnsafeCheckpointError) as exc:
            load_checkpoint_file(path)
        assert not HAS_ALLOW_LIST or np.ndarray in torch.serialization.get_safe_globals()  # kept after the load
    _refused(exc, path)
    assert exc.value.types == [f'{__name__}._write_marker']
    # the allow-list was scoped to the load
    assert not HAS_ALLOW_LIST or not [g for g in torch.serialization.get_safe_globals() if g in CHECKPOINT_GLOBALS]
    ckpt = load_checkpoint_file(path, trust=True)  # the opt-in: weights_only=False runs the payload
    assert _ran(path) and torch.equal(ckpt['state_dict']['w'], torch.ones(2))


def test_getattr_is_allowed_only_for_the_history_buffer_statistics(tmp_path):
    from mmengine.logging import HistoryBuffer

    class Reach:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': Reach()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"getattr\(HistoryBuffer, '__init__'\)"):
        load_checkpoint_file(path)
    buf = HistoryBuffer()
    buf.update(2.0)
    torch.save({'b': buf}, path)
    assert load_checkpoint_file(path)['b'].mean() == 2.0


def test_seg_tools_refuse_a_payload(tmp_path):
    path = _payload_checkpoint(tmp_path / 'payload.pth', _seg_model().state_dict())
    config = osp.join(REPO, 'configs/ce_shapes_demo.py')
    for argv in (['test', config, path, '--work-dir', str(tmp_path / 'w')],
                 ['calibrate', config, path, '--out', str(tmp_path / 'c.pth')],
                 ['dump-alphas', path, osp.join(REPO, 'configs/aslp_sod_demo.py'), '--out', str(tmp_path / 'a')]):
        with pytest.raises(UnsafeCheckpointError) as exc:
            invoke([*argv, '--debug'])
        _refused(exc, path)


def test_cls_tools_refuse_a_payload(tmp_path):
    path = _payload_checkpoint(tmp_path / 'payload.pth', _cls_model('configs/cls/ce_fmnist_demo.py').state_dict())
    config = osp.join(REPO, 'configs/cls/ce_fmnist_demo.py')
    for argv in (['calibrate', config, path, '--out', str(tmp_path / 'c.pth')],
                 ['dump-outputs', config, path, '--out', str(tmp_path / 'o.npz'), '--no-ood']):
        with pytest.raises(UnsafeCheckpointError) as exc:
            invoke([*argv, '--debug'])
        _refused(exc, path)


def test_train_tool_refuses_to_resume_a_payload(demo_root, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    cfg = demo_cfg(demo_root, str(work))
    path = _payload_checkpoint(work / 'iter_2.pth', _seg_model('configs/bce_sod_demo.py').state_dict())
    (work / 'last_checkpoint').write_text(path)
    config = tmp_path / 'cfg.py'
    cfg.dump(str(config))
    with pytest.raises(UnsafeCheckpointError) as exc:
        invoke(['train', str(config), '--resume', '--debug'])
    _refused(exc, path)


def test_checkpoint_teacher_hook_refuses_a_payload(shapes_root, tmp_path):
    path = _payload_checkpoint(tmp_path / 'teacher.pth', _seg_model().state_dict())
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'w'), config='configs/ldl_offline_shapes_demo.py', max_iters=1)
    cfg.custom_hooks[0].checkpoint = path
    with pytest.raises(UnsafeCheckpointError, match='trust_checkpoint=True') as exc:
        SafeCheckpointRunner.from_cfg(cfg).train()
    assert '_write_marker' in str(exc.value) and not _ran(path)


def test_the_opt_in_loads_the_payload_checkpoint_in_a_tool(shapes_root, tmp_path):
    path = _payload_checkpoint(tmp_path / 'payload.pth', _seg_model().state_dict())
    roots = [f'{s}_dataloader.dataset.data_root={shapes_root}' for s in ('train', 'val')]
    record = invoke(['calibrate', osp.join(REPO, 'configs/ce_shapes_demo.py'), path, '--out', str(tmp_path / 'c.pth'),
                     '--trust-checkpoint', '--cfg-options', *roots])
    assert _ran(path) and osp.isfile(record['out'])


# ------------------------------------------------------------------------- the project's own checkpoints
def _loads_through_the_allow_list(path):
    if HAS_ALLOW_LIST:
        with checkpoint_safe_globals():
            assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == [], path
    return load_checkpoint_file(path)  # torch's weights-only unpickler, or ALLOW_LIST_PICKLE on torch < 2.5


@pytest.mark.slow
def test_every_checkpoint_the_project_writes_loads_without_the_opt_in(demo_root, shapes_root, tmp_path):
    """ASLP (its alphas and hook state), the EMA teacher, the TEDL stage, the RNG states of
    ResumeRandomStateHook and a calibrated T: each loads with weights_only=True and the allow-list,
    and resumes through SafeCheckpointRunner."""
    runs = {}
    cfg = demo_cfg(demo_root, str(tmp_path / 'aslp'), max_iters=2, val_interval=2, ckpt_interval=2,
                   config='configs/aslp_sod_demo.py')
    cfg.custom_hooks[-1].warmup_iters = 0
    runs['aslp'] = cfg
    runs['ldl_online'] = shapes_cfg(shapes_root, str(tmp_path / 'ldl'), config='configs/ldl_online_shapes_demo.py',
                                    ckpt_interval=2)
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'tedl'), config='configs/tedl_shapes_demo.py', ckpt_interval=2)
    cfg.custom_hooks[-1].switch_iter = 1
    runs['tedl'] = cfg
    for name, cfg in runs.items():
        SafeCheckpointRunner.from_cfg(cfg).train()
        path = osp.join(cfg.work_dir, 'iter_2.pth')
        ckpt = _loads_through_the_allow_list(path)
        assert 'uqseg_random_state' in ckpt and ckpt['message_hub']['log_scalars'], name
        if name == 'aslp':
            assert 'uqseg_aslp' in ckpt and 'decode_head.alpha' in ckpt['state_dict']
        if name == 'ldl_online':
            assert TEACHER_STATE_KEY in ckpt
        if name == 'tedl':
            assert bool(ckpt['state_dict']['decode_head.conv_seg.evidential'])
        resumed = cfg.copy()
        resumed.train_cfg.max_iters, resumed.resume, resumed.load_from = 3, True, path
        resumed.work_dir = cfg.work_dir + '_resumed'
        runner = SafeCheckpointRunner.from_cfg(resumed)
        runner.train()
        assert runner.iter == 3
    # a calibrated T (uqseg calibrate's checkpoint, with the fit's record in meta)
    roots = [f'{s}_dataloader.dataset.data_root={shapes_root}' for s in ('train', 'val')]
    record = invoke(['calibrate', osp.join(REPO, 'configs/ldl_online_shapes_demo.py'),
                     osp.join(runs['ldl_online'].work_dir, 'iter_2.pth'), '--out', str(tmp_path / 'calibrated.pth'),
                     '--cfg-options', *roots])
    ckpt = _loads_through_the_allow_list(record['out'])
    assert 'temperature' in ckpt['state_dict'] and 'uqseg_temperature' in ckpt['meta']


# ---------------------------------------------------------------------------------------------- strict
def test_a_checkpoint_of_another_width_is_an_error_naming_the_keys(shapes_root, tmp_path):
    path = str(tmp_path / 'w32.pth')
    torch.save({'state_dict': _seg_model(channels=32).state_dict()}, path)
    roots = [f'{s}_dataloader.dataset.data_root={shapes_root}' for s in ('train', 'val')]
    argv = [osp.join(REPO, 'configs/ce_shapes_demo.py'), path, '--out', str(tmp_path / 'c.pth'), '--cfg-options',
            *roots]
    with pytest.raises(CheckpointMismatchError) as exc:
        invoke(['calibrate', *argv, '--debug'])
    text = str(exc.value)
    assert re.search(r'w32\.pth does not fit EncoderDecoder: size mismatch for .*decode_head\.convs\.0\.conv\.weight: '
                     r'\[32, 256, 3, 3\] in the checkpoint, \[64, 256, 3, 3\] in the model.*--partial-load', text), text
    src, dst = _seg_model(channels=32).state_dict(), _seg_model().state_dict()
    shaped = sorted(k for k in dst if k in src and src[k].shape != dst[k].shape)
    assert sorted(exc.value.mismatched) == shaped and f'({len(shaped)} in all)' in text
    assert not exc.value.missing and not exc.value.unexpected
    assert not osp.exists(tmp_path / 'c.pth')
    record = invoke(['calibrate', *argv, '--partial-load'])  # the explicit option proceeds
    assert osp.isfile(record['out'])


def test_an_edl_checkpoint_in_a_dismax_config_is_refused_by_the_test_tool(shapes_root, tmp_path):
    edl, dismax = _seg_model('configs/edl_shapes_demo.py'), _seg_model('configs/dismax_shapes_demo.py')
    path = str(tmp_path / 'edl.pth')
    torch.save({'state_dict': edl.state_dict()}, path)
    missing = sorted(dismax.state_dict().keys() - edl.state_dict().keys())
    unexpected = sorted(edl.state_dict().keys() - dismax.state_dict().keys())
    assert missing and unexpected
    roots = [f'test_dataloader.dataset.datasets.{i}.data_root={shapes_root}' for i in range(3)]
    argv = [osp.join(REPO, 'configs/dismax_shapes_demo.py'), path, '--work-dir', str(tmp_path / 'w'),
            '--cfg-options', *roots]
    with pytest.raises(CheckpointMismatchError) as exc:
        invoke(['test', *argv, '--debug'])
    assert sorted(exc.value.missing) == missing and sorted(exc.value.unexpected) == unexpected
    text = str(exc.value)
    assert all(k in text for k in missing + unexpected) and '--partial-load' in text
    metrics = invoke(['test', *argv, '--partial-load'])
    assert metrics


def test_dump_outputs_refuses_an_edl_checkpoint_in_a_dismax_config(tmp_path):
    edl = _cls_model('configs/cls/edl_fmnist_demo.py')
    path = str(tmp_path / 'edl.pth')
    torch.save({'state_dict': edl.state_dict()}, path)
    with pytest.raises(CheckpointMismatchError, match=r'edl\.pth does not fit .*head\.fc'):
        invoke(['dump-outputs', osp.join(REPO, 'configs/cls/dismax_fmnist_demo.py'), path, '--out',
                str(tmp_path / 'o.npz'), '--no-ood', '--debug'])


def test_partial_load_loads_what_fits_and_nothing_else():
    """Against a reference written from the definition: every key present in both with the same
    shape is the checkpoint's tensor, every other model entry keeps its initial value."""
    src = _seg_model(channels=32)
    torch.manual_seed(1)
    dst = _seg_model()
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    missing, unexpected, mismatched = load_state_dict_checked(dst, {'state_dict': src.state_dict()}, 'src.pth',
                                                              strict=False)
    ref = src.state_dict()
    fits = {k for k, v in before.items() if k in ref and ref[k].shape == v.shape}
    assert set(mismatched) == {k for k in before if k in ref and ref[k].shape != before[k].shape}
    for k, v in dst.state_dict().items():
        assert torch.equal(v, ref[k] if k in fits else before[k]), k
    assert not missing and not unexpected


def test_strict_load_accepts_what_the_modules_own_loaders_take(tmp_path):
    """A calibrated T (TemperatureBuffer) and a 'module.' prefix load without complaint."""
    model = _seg_model()
    scaled = MODELS.build(dict(Config.fromfile(osp.join(REPO, 'configs/ce_shapes_demo.py')).model,
                               type='TemperatureScaledEncoderDecoder', temperature=None))
    state = {f'module.{k}': v for k, v in model.state_dict().items()}
    state['module.temperature'] = torch.tensor(1.7)
    path = str(tmp_path / 'cal.pth')
    torch.save({'state_dict': state}, path)
    load_checkpoint_strict(scaled, path)
    assert float(scaled.temperature) == pytest.approx(1.7)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys: temperature.*calibrated"):
        load_checkpoint_strict(_seg_model(), path)


def test_resume_needs_a_checkpoint_that_fits(shapes_root, tmp_path):
    path = str(tmp_path / 'iter_1.pth')
    torch.save({'state_dict': _seg_model(channels=32).state_dict(), 'meta': {'iter': 1, 'epoch': 0}}, path)
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'w'))
    cfg.resume, cfg.load_from = True, path
    with pytest.raises(CheckpointMismatchError, match='size mismatch for decode_head'):
        SafeCheckpointRunner.from_cfg(cfg).train()



def test_a_config_can_name_the_runner(demo_root, tmp_path):
    """runner_type='SafeCheckpointRunner': mmseg's and mmpretrain's own tools build it by name."""
    from mmseg.registry import RUNNERS
    cfg = demo_cfg(demo_root, str(tmp_path / 'w'))
    cfg.runner_type = 'SafeCheckpointRunner'
    assert type(RUNNERS.build(cfg)) is SafeCheckpointRunner
