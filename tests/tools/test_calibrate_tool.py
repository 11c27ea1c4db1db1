"""uqseg calibrate fits T on the validation split and writes a checkpoint that holds it (its
record with the bounds, and a reached bound flagged with a warning line); uqseg test on that
checkpoint reports the calibrated model, equal to dividing the logits by T by hand; the test
split, an all-ignored split and a missing required T are refused."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from tests.helpers.cfg import shapes_cfg
from uqseg.cli import invoke
from uqseg.core.functional import calibration_error, nll
from uqseg.core.temperature import DEFAULT_BOUNDS
from uqseg.engine.checkpoint import SafeCheckpointRunner

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('one_thread')]
CONFIG = 'configs/ce_shapes_demo.py'


def _calibrate(argv):
    return invoke(['calibrate', *argv, '--debug'])


def _test(argv):
    return invoke(['test', *argv, '--debug'])


def _roots(root):
    opts = [f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val')]
    return opts + [f'test_dataloader.dataset.datasets.{i}.data_root={root}' for i in range(3)]


@pytest.fixture(scope='module')
def checkpoint(shapes_root, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('train'))
    Runner.from_cfg(shapes_cfg(shapes_root, work, max_iters=6, ckpt_interval=6)).train()
    return osp.join(work, 'iter_6.pth')


@pytest.fixture(scope='module')
def calibrated(shapes_root, checkpoint, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('cal') / 'calibrated.pth')
    record = _calibrate([CONFIG, checkpoint, '--out', out, '--cfg-options',
                                                     *_roots(shapes_root)])
    return out, record


def test_the_fit_is_recorded_and_lowers_the_validation_nll(calibrated):
    out, record = calibrated
    ckpt = torch.load(out, weights_only=False)
    t = float(ckpt['state_dict']['temperature'])
    assert t > 0 and t != 1.0
    meta = ckpt['meta']['uqseg_temperature']
    assert meta['temperature'] == pytest.approx(t) and meta['split'] == 'val' and meta['method'] == 'nll'
    assert meta['pixels_seen'] == 6 * 64 * 64 == meta['pixels_used']  # every valid pixel of the 6 images
    assert record['after']['NLL'] <= record['before']['NLL']
    assert record['after']['accuracy'] == record['before']['accuracy']  # one T keeps every argmax
    with open(osp.splitext(out)[0] + '.json') as f:
        saved = json.load(f)
    assert saved['temperature'] == pytest.approx(t)
    for rec in (meta, saved, record):
        assert rec['bounds'] == list(DEFAULT_BOUNDS) and rec['bound_reached'] is None


def test_a_reached_bound_is_flagged_in_the_record_and_warned(shapes_root, checkpoint, calibrated, tmp_path, capsys):
    t = float(torch.load(calibrated[0], weights_only=False)['state_dict']['temperature'])
    lo, hi = 2 * t, 8 * t  # the optimum t lies below the bounds
    out = str(tmp_path / 'bounded.pth')
    capsys.readouterr()
    record = _calibrate([CONFIG, checkpoint, '--out', out, '--bounds', str(lo), str(hi),
                                                     '--cfg-options', *_roots(shapes_root)])
    assert f'WARNING: temperature fit: T stopped at the lower bound {lo:g}' in capsys.readouterr().out
    ckpt = torch.load(out, weights_only=False)
    assert float(ckpt['state_dict']['temperature']) == pytest.approx(lo, rel=1e-7)
    with open(osp.splitext(out)[0] + '.json') as f:
        saved = json.load(f)
    for rec in (ckpt['meta']['uqseg_temperature'], saved, record):
        assert rec['bounds'] == [lo, hi] and rec['bound_reached'] == 'lower'
        assert rec['temperature'] == pytest.approx(lo)
    assert record['after']['NLL'] > calibrated[1]['after']['NLL']  # the bound is worse than the optimum


def _by_hand(shapes_root, checkpoint, t, work_dir):
    """ECE / NLL of softmax(z / T) over the test set's valid pixels, z the plain model's logits."""
    cfg = shapes_cfg(shapes_root, work_dir)
    runner = SafeCheckpointRunner.from_cfg(cfg)  # mmengine's Runner cannot load its checkpoints on torch >= 2.6
    runner.load_checkpoint(checkpoint)
    loader = Runner.build_dataloader(dict(cfg.test_dataloader, dataset=cfg.test_dataloader.dataset.datasets[0]))
    probs, labels = [], []
    runner.model.eval()
    with torch.no_grad():
        for batch in loader:
            for s in runner.model.test_step(batch):
                z, y = s.seg_logits.data, s.gt_sem_seg.data[0]
                keep = (y != 255) & (y != 254)
                probs.append((z / t).softmax(0)[:, keep].T)
                labels.append(y[keep])
    p, y = torch.cat(probs).double(), torch.cat(labels)
    conf, pred = p.max(1)
    return calibration_error(conf, pred == y, 15), nll(p, y)


def test_test_tool_reports_the_model_with_t_applied(shapes_root, checkpoint, calibrated, tmp_path, capsys):
    out, _ = calibrated
    t = float(torch.load(out, weights_only=False)['state_dict']['temperature'])
    metrics = _test([CONFIG, out, '--work-dir', str(tmp_path / 'cal'), '--cfg-options',
                                                 *_roots(shapes_root)])
    assert 'applied to the logits' in capsys.readouterr().out
    plain = _test([CONFIG, checkpoint, '--work-dir', str(tmp_path / 'plain'),
                                               '--cfg-options', *_roots(shapes_root)])
    ece, nll_ = _by_hand(shapes_root, checkpoint, t, str(tmp_path / 'hand'))
    assert metrics['test/ECE'] == pytest.approx(ece, abs=1e-6)
    assert metrics['test/NLL'] == pytest.approx(nll_, abs=1e-6)
    assert metrics['test/NLL'] != pytest.approx(plain['test/NLL'], abs=1e-6)
    # one T keeps the argmax of every pixel whose two top logits differ by more than float32
    # rounding (z / T can merge logits an ulp apart, and which pixels have such near ties depends on
    # the CPU's convolution arithmetic): mIoU equal up to a pixel (mmseg rounds it to 0.01 %)
    assert metrics['test/mIoU'] == pytest.approx(plain['test/mIoU'], abs=0.05)


def test_the_test_split_is_refused(shapes_root, checkpoint, tmp_path):
    with pytest.raises(ValueError, match='--split test fits T on the test split'):
        _calibrate([CONFIG, checkpoint, '--split', 'test', '--out', str(tmp_path / 'a.pth'), '--cfg-options',
                   *_roots(shapes_root)])
    same = ['val_dataloader.dataset.data_prefix.img_path=img_dir/test',
            'val_dataloader.dataset.data_prefix.seg_map_path=ann_dir/test', 'val_dataloader.dataset.set_name=test']
    with pytest.raises(ValueError, match='is also a test dataset of this config'):
        _calibrate([CONFIG, checkpoint, '--out', str(tmp_path / 'b.pth'), '--cfg-options', *_roots(shapes_root), *same])
    assert not osp.exists(tmp_path / 'a.pth') and not osp.exists(tmp_path / 'b.pth')


def test_an_all_ignored_split_is_refused(shapes_root, checkpoint, tmp_path):
    root = tmp_path / 'ignored'
    shutil.copytree(osp.join(shapes_root, 'img_dir', 'val'), root / 'img_dir' / 'val')
    os.makedirs(root / 'ann_dir' / 'val')
    for name in os.listdir(root / 'img_dir' / 'val'):
        cv2.imwrite(str(root / 'ann_dir' / 'val' / name), np.full((64, 64), 255, np.uint8))
    with pytest.raises(ValueError, match='has no valid pixel'):
        _calibrate([CONFIG, checkpoint, '--out', str(tmp_path / 'c.pth'), '--cfg-options',
                                                *_roots(shapes_root), f'val_dataloader.dataset.data_root={root}'])


def test_a_required_temperature_missing_from_the_checkpoint_is_refused(shapes_root, checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r'iter_6.pth holds no temperature, which .* requires'):
        _test([CONFIG, checkpoint, '--work-dir', str(tmp_path), '--cfg-options',
                                           *_roots(shapes_root), 'model.type=TemperatureScaledEncoderDecoder',
                                           'model.temperature=None'])
