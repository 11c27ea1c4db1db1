"""uqseg train / test / calibrate: a shipped config trained by name (mmseg and mmpretrain), the
classifier calibrated and tested with its T applied, the config built from the options (work dir,
AMP), and a user's mistake (a bad config path, a checkpoint that does not fit) as one line with
exit status 1 (through ``tools/train.py`` too)."""
import gzip
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers.cfg import REPO
from uqseg.cli import command_parser, invoke, main
from uqseg.cli.calibrate import ignore_index_of
from uqseg.cli.test import build_test_config, classifier_temperature_cfg, is_classifier_config
from uqseg.cli.train import build_train_config, default_work_dir
from uqseg.cls.datasets import IDX_FILES, write_idx

pytestmark = pytest.mark.usefixtures('one_thread')


def _sod_roots(demo_root):
    tr = osp.join(demo_root, 'DUTS-TR')
    return [f'train_dataloader.dataset.data_root={tr}', f'val_dataloader.dataset.data_root={tr}']


def test_train_a_shipped_segmentation_config_by_name(demo_root, tmp_path):
    work = str(tmp_path / 'run')
    runner = invoke(['train', 'bce_sod_demo', '--work-dir', work, '--cfg-options', *_sod_roots(demo_root),
                     'train_dataloader.batch_size=2', 'train_cfg.max_iters=2', 'train_cfg.val_interval=1000',
                     'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1'])
    assert runner.iter == 2 and runner.work_dir == osp.abspath(work)
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    assert type(runner).__name__ == 'SafeCheckpointRunner'


@pytest.fixture(scope='module')
def fmnist(tmp_path_factory):
    """Fashion-MNIST-format IDX files (24 training images: 8 to train on, 8 the val split; 10 test
    images) and a 4-row MNIST CSV.gz for the OOD set: the demo config's --cfg-options on them."""
    root = tmp_path_factory.mktemp('fmnist')
    rng = np.random.default_rng(0)
    write_idx(str(root / IDX_FILES['train_images']), rng.integers(0, 256, (24, 28, 28), dtype=np.uint8))
    write_idx(str(root / IDX_FILES['train_labels']), rng.integers(0, 10, 24, dtype=np.uint8))
    write_idx(str(root / IDX_FILES['test_images']), rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    write_idx(str(root / IDX_FILES['test_labels']), rng.integers(0, 10, 10, dtype=np.uint8))
    csv = root / 'mnist.csv.gz'
    rows = np.concatenate([rng.integers(0, 256, (4, 784)), rng.integers(0, 10, (4, 1))], 1)
    with gzip.open(csv, 'wt') as f:
        f.write('\n'.join(','.join(map(str, r)) for r in rows) + '\n')
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.num_train=8',
            'train_dataloader.dataset.num_val=8', 'train_dataloader.batch_size=4',
            f'val_dataloader.dataset.data_root={root}', 'val_dataloader.dataset.num_val=8',
            f'test_dataloader.dataset.datasets.0.data_root={root}',
            f'test_dataloader.dataset.datasets.1.data_file={csv}',
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1']


@pytest.fixture(scope='module')
def trained_classifier(fmnist, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('cls'))
    runner = invoke(['train', 'cls/ce_fmnist_demo', '--work-dir', work, *fmnist])
    return runner, osp.join(work, 'epoch_1.pth')


def test_train_a_shipped_classification_config_by_name(trained_classifier):
    runner, ckpt = trained_classifier
    assert runner.iter == 2 and runner.epoch == 1  # 8 images, batches of 4
    assert type(runner.model).__name__ == 'ImageClassifier'
    assert osp.isfile(ckpt)
    assert 'val/accuracy/top1' in runner.message_hub.log_scalars


def test_calibrate_a_classifier_by_its_scope_and_test_it_with_t_applied(fmnist, trained_classifier, tmp_path,
                                                                          capsys):
    _, ckpt = trained_classifier
    out = str(tmp_path / 'calibrated.pth')
    record = invoke(['calibrate', 'cls/ce_fmnist_demo', ckpt, '--out', out, '--device', 'cpu', *fmnist])
    printed = capsys.readouterr().out
    assert record['samples'] == 8 and record['out'] == out and 'pixels_seen' not in record  # the classifier's fit
    assert f'test with: uqseg test {record["config"]} {out}' in printed
    assert record['config'] == osp.join(REPO, 'uqseg', 'configs', 'cls', 'ce_fmnist_demo.py')
    t = torch.load(out, weights_only=False)['state_dict']['temperature']
    assert float(t) == pytest.approx(record['temperature'])
    plain = invoke(['test', 'cls/ce_fmnist_demo', ckpt, '--work-dir', str(tmp_path / 'plain'), *fmnist])
    capsys.readouterr()
    scaled = invoke(['test', 'cls/ce_fmnist_demo', out, '--work-dir', str(tmp_path / 'scaled'), *fmnist])
    assert f'{out}: temperature {t.tolist()} (uqseg calibrate) applied to the logits' in capsys.readouterr().out
    assert scaled['selective/accuracy'] == plain['selective/accuracy']  # one T > 0 keeps every argmax
    assert scaled['selective/NLL'] != pytest.approx(plain['selective/NLL'], abs=1e-7)
    assert scaled['selective/AURC[max-prob]'] == pytest.approx(plain['selective/AURC[max-prob]'])  # same ranking
    with open(tmp_path / 'scaled' / 'test_metrics.json') as f:
        assert json.load(f) == pytest.approx(scaled)


def test_the_front_end_and_the_temperature_model_follow_the_config():
    seg, cls = build_train_config('ce_shapes_demo'), build_train_config('cls/ce_fmnist_demo')
    assert not is_classifier_config(seg) and is_classifier_config(cls)
    scaled = classifier_temperature_cfg(cls.model)
    assert scaled['type'] == 'TemperatureScaledImageClassifier' and scaled['temperature'] is None
    assert cls.model.type == 'ImageClassifier'  # a copy
    ldl = dict(cls.model, type='LDLImageClassifier')
    assert classifier_temperature_cfg(ldl) == ldl  # it loads T itself
    assert ignore_index_of(seg) == 255  # mmseg's default: the shapes head sets none
    seg.model.decode_head.ignore_index = 7
    assert ignore_index_of(seg) == 7


def test_the_train_config_of_the_options():
    cfg = build_train_config('cls/ce_fmnist_demo')
    # mmseg's default work dir, from the config's file name (the kd / offline LDL configs' teacher path)
    assert cfg.work_dir == default_work_dir('cls/ce_fmnist_demo.py') == osp.join('./work_dirs', 'ce_fmnist_demo')
    assert not cfg.resume and cfg.launcher == 'none'
    cfg = build_train_config('bce_sod_demo', work_dir='w', resume=True, amp=True, launcher='pytorch',
                             cfg_options={'train_cfg.max_iters': 3})
    assert (cfg.work_dir, cfg.resume, cfg.launcher, cfg.train_cfg.max_iters) == ('w', True, 'pytorch', 3)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 'dynamic'
    with pytest.raises(ValueError, match="--amp needs optim_wrapper.type OptimWrapper .* 'ApexOptimWrapper'"):
        build_train_config('bce_sod_demo', amp=True, cfg_options={'optim_wrapper.type': 'ApexOptimWrapper'})


def test_the_test_config_of_the_options(tmp_path):
    """--tta wraps the model (MeanProbabilitySegTTAModel for mmseg's SegTTAModel) or names the key it
    lacks; a checkpoint with T makes the segmentor temperature-scaled; --out is refused for a classifier."""
    plain, calibrated = str(tmp_path / 'plain.pth'), str(tmp_path / 'calibrated.pth')
    torch.save({'state_dict': {}}, plain)
    torch.save({'state_dict': {'temperature': torch.tensor(1.5)}}, calibrated)

    def config(*argv):
        return build_test_config(command_parser('test').parse_args(list(argv)))

    cfg = config('edl_deeplabv3plus_r50_cityscapes', plain, '--tta', '--work-dir', str(tmp_path))
    assert cfg.model.type == 'MeanProbabilitySegTTAModel' and cfg.model.module.type == 'EncoderDecoder'
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline and cfg.load_from == plain
    with pytest.raises(KeyError, match='bce_sod: --tta needs tta_pipeline in the config'):
        config('bce_sod', plain, '--tta')  # the real-data SOD config has none (the demos' have a flip one)
    cfg = config('ce_shapes_demo', calibrated)
    assert cfg.model.type == 'TemperatureScaledEncoderDecoder' and cfg.model.temperature is None
    assert cfg.work_dir == default_work_dir('ce_shapes_demo')
    with pytest.raises(ValueError, match='--out writes segmentation maps; this is an mmpretrain config'):
        config('cls/ce_fmnist_demo', plain, '--out', str(tmp_path / 'maps'))


def _one_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith('warning: ')]
    assert err == [err[0], f'uqseg {argv[0]}: (add --debug for the traceback)'], err
    return err[0]


def test_a_checkpoint_that_does_not_fit_is_one_line(shapes_root, tmp_path, capsys):
    path = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {'w': torch.ones(2)}}, path)
    roots = [f'{s}_dataloader.dataset.data_root={shapes_root}' for s in ('train', 'val')]
    line = _one_line(capsys, ['calibrate', 'ce_shapes_demo', path, '--out', str(tmp_path / 'c.pth'),
                              '--cfg-options', *roots])
    assert line.startswith(f'uqseg calibrate: error: {path} does not fit EncoderDecoder: ')
    assert 'missing keys: backbone.stem.0.weight' in line and 'unexpected keys: w.' in line
    assert '--partial-load' in line
    roots = [f'test_dataloader.dataset.datasets.{i}.data_root={shapes_root}' for i in range(3)]
    line = _one_line(capsys, ['test', 'ce_shapes_demo', path, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                              *roots])
    assert line.startswith(f'uqseg test: error: {path} does not fit ') and '--partial-load' in line
    line = _one_line(capsys, ['test', 'ce_shapes_demo', str(tmp_path / 'missing.pth')])
    assert line == f"uqseg test: error: checkpoint '{tmp_path / 'missing.pth'}' does not exist"
    assert not osp.exists(tmp_path / 'c.pth')


def test_a_bad_config_path_is_one_line_with_exit_status_1(tmp_path):
    """Through ``python tools/train.py`` (the shim mmseg users type): the command's one line."""
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), 'no_such_config.py']
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith('uqseg train')]
    assert lines == ['uqseg train: error: no_such_config.py: no such config file, and no shipped config of that name; '
                     '"uqseg configs list" lists them', 'uqseg train: (add --debug for the traceback)'], out.stderr
    assert 'Traceback' not in out.stderr and not osp.exists(tmp_path / 'work_dirs')
