"""What the pixel metrics write besides numbers: PNG pictures, the uncertainty-map hook, the
tools/eval_maps.py command line tool on saved maps, and the configs' evaluators."""
import importlib.util
import json
import math
import os
import os.path as osp
import types

import cv2
import numpy as np
import py_sod_metrics as sod
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.registry import HOOKS, METRICS
from mmseg.structures import SegDataSample
from torchmetrics.classification import BinaryCalibrationError

import uqseg  # noqa: F401
from _samples import make_sample

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _samples(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = torch.rand(1, 12, 10, generator=g)
        y = (torch.rand(12, 10, generator=g) < p[0]).long()
        out.append(make_sample(p, y, set_name='DUTS/TE' if i % 2 else 'ECSSD', img_path=f'{i}.jpg'))
    return out


def _png_ok(path):
    assert osp.isfile(path) and osp.getsize(path) > 1000, path
    img = cv2.imread(path)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 1


def test_reliability_and_risk_coverage_pngs(tmp_path):
    for cfg in (dict(type='PixelCalibrationMetric', plot_dir=str(tmp_path)),
                dict(type='PixelCalibrationMetric', confidence='positive', plot_dir=str(tmp_path / 'pos')),
                dict(type='PixelUncertaintyMetric', plot_dir=str(tmp_path))):
        m = METRICS.build(cfg)
        for s in _samples():
            m.process({}, [s])
        m.evaluate(4)
    for name in ('reliability_ECSSD.png', 'reliability_DUTS_TE.png', 'risk_coverage_ECSSD.png',
                 'risk_coverage_DUTS_TE.png', 'pos/reliability_ECSSD.png'):
        _png_ok(str(tmp_path / name))


def test_plot_true_uses_the_runner_log_folder(tmp_path):
    log_dir = tmp_path / 'work' / '20240101_000000'
    os.makedirs(log_dir)
    MMLogger.get_instance('uqseg_plot_test', log_file=str(log_dir / '20240101_000000.log'))
    m = METRICS.build(dict(type='PixelCalibrationMetric', plot=True, prefix='val'))
    for s in _samples(2):
        m.process({}, [s])
    m.evaluate(2)
    _png_ok(str(log_dir / 'uq_plots' / 'val_reliability_ECSSD.png'))


def test_uncertainty_map_hook_writes_first_n_per_set(tmp_path):
    img_path = str(tmp_path / 'img.jpg')
    cv2.imwrite(img_path, (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8))
    hook = HOOKS.build(dict(type='UncertaintyMapHook', num_samples=2, score_field='seg_uncertainty'))
    runner = types.SimpleNamespace(log_dir=str(tmp_path / 'log'), iter=0)
    outputs = []
    for i in range(3):
        s = SegDataSample(metainfo=dict(set_name='DUTS-TE', img_path=img_path if i == 0 else f'/none/{i}.jpg'))
        s.seg_logits = PixelData(data=torch.rand(1, 10, 12))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, 10, 12)))
        s.seg_uncertainty = PixelData(data=torch.rand(1, 10, 12) * 3)
        outputs.append(s)
    multi = SegDataSample(metainfo=dict(set_name='ADE', img_path='/none/m.jpg'))
    multi.seg_logits = PixelData(data=torch.randn(5, 8, 8))
    multi.seg_uncertainty = PixelData(data=torch.rand(1, 8, 8))  # no ground truth: panels without it
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, None, outputs[:2])
    hook.after_test_iter(runner, 1, None, outputs[2:] + [multi])
    folder = tmp_path / 'log' / 'uncertainty_maps'
    assert sorted(os.listdir(folder / 'DUTS-TE')) == ['1.png', 'img.png']  # first 2 only
    _png_ok(str(folder / 'DUTS-TE' / 'img.png'))
    _png_ok(str(folder / 'ADE' / 'm.png'))


# ----------------------------------------------------------------------------------------------
# tools/eval_maps.py
# ----------------------------------------------------------------------------------------------
def _load_tool():
    spec = importlib.util.spec_from_file_location('eval_maps', osp.join(REPO, 'tools', 'eval_maps.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def maps(tmp_path_factory):
    """Ground truth from the demo generator and prediction PNGs written here (noisy masks)."""
    from uqseg.datasets.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('maps'))
    sets = make_demo_data(osp.join(root, 'demo'), n_train=1, n_val=1, n_test=5, n_test2=1, n_ood=1, seed=3)
    gt_dir = osp.join(sets['DUTS-TE'], 'DUTS-TE-Mask')
    pred_dir = osp.join(root, 'MyMethod')
    os.makedirs(pred_dir)
    rng = np.random.default_rng(0)
    for name in sorted(os.listdir(gt_dir)):
        m = cv2.imread(osp.join(gt_dir, name), cv2.IMREAD_GRAYSCALE).astype(np.float64)
        pred = np.clip(0.7 * m + 40 + rng.normal(0, 35, m.shape), 0, 255).round().astype(np.uint8)
        cv2.imwrite(osp.join(pred_dir, name), pred)
    return pred_dir, gt_dir


def test_eval_maps_matches_independent_references(maps, tmp_path, capsys):
    pred_dir, gt_dir = maps
    tool = _load_tool()
    out_json = str(tmp_path / 'r.json')
    res = tool.main(['--pred', pred_dir, '--gt', gt_dir, '--set-name', 'X', '--n-bins', '16',
                     '--confidence', 'positive', '--json', out_json, '--plot-dir', str(tmp_path / 'plots')])
    printed = capsys.readouterr().out
    assert 'X/ECE' in printed and 'X/maxF' in printed and 'X/AUROC' in printed
    with open(out_json) as f:
        assert json.load(f) == pytest.approx(res, nan_ok=True)
    _png_ok(str(tmp_path / 'plots' / 'reliability_X.png'))
    names = sorted(os.listdir(gt_dir))
    ps, ys = [], []
    mae, sm, fm = sod.MAE(), sod.Smeasure(), sod.Fmeasure()
    for name in names:
        pred = cv2.imread(osp.join(pred_dir, name), cv2.IMREAD_GRAYSCALE)
        gt = cv2.imread(osp.join(gt_dir, name), cv2.IMREAD_GRAYSCALE)
        ps.append(torch.from_numpy(pred).flatten().float() / 255)
        ys.append(torch.from_numpy((gt >= 128).astype(np.int64)).flatten())
        # pysodmetrics binarises the GT at > 128, uqseg at >= 128 (LoadSaliencyMask); the demo
        # masks have no pixel of exactly 128 where that would matter
        for m in (mae, sm, fm):
            m.step(pred=pred, gt=np.where(gt >= 128, 255, 0).astype(np.uint8))
    p, y = torch.cat(ps), torch.cat(ys)
    # 16 bins: no 8-bit value v/255 sits on an edge k/16, so torchmetrics' bins agree with ours.
    # torchmetrics accumulates in the input's dtype: float64 here (in float32 its sums drift by
    # ~1e-6 over 80k pixels; uqseg always sums in float64)
    assert res['X/ECE'] == pytest.approx(BinaryCalibrationError(n_bins=16)(p.double(), y).item(), abs=1e-9)
    assert res['X/MAE'] == pytest.approx(mae.get_results()['mae'], abs=1e-12)
    assert res['X/S'] == pytest.approx(sm.get_results()['sm'], abs=1e-12)
    assert res['X/maxF'] == pytest.approx(fm.get_results()['fm']['curve'].max(), abs=1e-12)
    from sklearn.metrics import roc_auc_score
    # top-label confidence level of an 8-bit value v is max(v, 255 - v) / 255; in float32,
    # 1 - v/255 and (255 - v)/255 can differ by one ulp, which the histogram (rightly) merges
    v = (p * 255).round().long()
    level = torch.maximum(v, 255 - v).numpy()
    correct = ((v > 127).long() == y).numpy()
    assert res['X/AUROC'] == pytest.approx(roc_auc_score(correct, level), abs=1e-12)


def _write(path, arr):
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(path, arr)


def test_eval_maps_errors(maps, tmp_path, capsys):
    pred_dir, gt_dir = maps
    tool = _load_tool()
    names = sorted(os.listdir(gt_dir))
    # a missing prediction
    part = str(tmp_path / 'part')
    for n in names[1:]:
        _write(osp.join(part, n), cv2.imread(osp.join(pred_dir, n), cv2.IMREAD_GRAYSCALE))
    with pytest.raises(SystemExit) as e:
        tool.main(['--pred', part, '--gt', gt_dir, '--no-sod'])
    assert e.value.code == 2
    assert f"1 ground-truth mask(s) without a prediction: '{osp.splitext(names[0])[0]}'" in capsys.readouterr().err
    res = tool.main(['--pred', part, '--gt', gt_dir, '--no-sod', '--allow-unmatched'])
    assert not math.isnan(res['part/ECE']) and 'part/MAE' not in res
    # a prediction of the wrong size, then resized on request
    small = str(tmp_path / 'small')
    for n in names:
        _write(osp.join(small, n), cv2.resize(cv2.imread(osp.join(pred_dir, n), 0), (64, 64)))
    with pytest.raises(SystemExit):
        tool.main(['--pred', small, '--gt', gt_dir, '--no-sod'])
    assert 'prediction of size 64x64 (WxH) but ground truth' in capsys.readouterr().err
    assert not math.isnan(tool.main(['--pred', small, '--gt', gt_dir, '--no-sod', '--resize-pred'])['small/ECE'])
    # a 0/1 ground truth mask and a colour prediction
    bad_gt = str(tmp_path / 'badgt')
    for n in names:
        _write(osp.join(bad_gt, n), (cv2.imread(osp.join(gt_dir, n), 0) >= 128).astype(np.uint8))
    with pytest.raises(SystemExit):
        tool.main(['--pred', pred_dir, '--gt', bad_gt, '--no-sod'])
    assert 'a 0/1 or class-index map' in capsys.readouterr().err
    colour = str(tmp_path / 'colour')
    for n in names:
        _write(osp.join(colour, n), np.random.default_rng(1).integers(0, 255, (128, 128, 3)).astype(np.uint8))
    with pytest.raises(SystemExit):
        tool.main(['--pred', colour, '--gt', gt_dir, '--no-sod'])
    assert 'channels with different values' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(['--pred', str(tmp_path / 'nope'), '--gt', gt_dir])
    assert 'does not exist' in capsys.readouterr().err


def test_configs_build_the_new_evaluators():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'bce_sod_demo.py'))
    types_ = [e['type'] for e in cfg.test_evaluator]
    assert types_ == ['PixelCalibrationMetric', 'PixelUncertaintyMetric', 'OODDetectionMetric', 'SODMetric']
    for e in cfg.test_evaluator + cfg.val_evaluator:
        METRICS.build(e)
    assert [e['type'] for e in Config.fromfile(osp.join(REPO, 'configs', 'bce_sod.py')).test_evaluator] == types_
