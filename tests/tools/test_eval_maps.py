"""uqseg eval-maps (uqseg.seg.saved_maps): calibration, misclassification and SOD scores of saved prediction
maps, against independent references, and its errors on mismatched folders."""
import json
import math
import os
import os.path as osp

import cv2
import numpy as np
import py_sod_metrics as sod
import pytest
import torch
from torchmetrics.classification import BinaryCalibrationError

from tests.helpers.files import assert_png
from uqseg.cli import invoke, main
from uqseg.seg.datasets import MaskFormatError
from uqseg.seg.saved_maps import MapError, evaluate_folders


@pytest.fixture(scope='module')
def maps(tmp_path_factory):
    """Ground truth from the demo generator and prediction PNGs written here (noisy masks)."""
    from uqseg.seg.datasets.demo_data import make_demo_data
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
    out_json = str(tmp_path / 'out' / 'r.json')
    res = invoke(['eval-maps', '--pred', pred_dir, '--gt', gt_dir, '--set-name', 'X', '--n-bins', '16',
                  '--confidence', 'positive', '--json', out_json, '--plot-dir', str(tmp_path / 'plots')])
    captured = capsys.readouterr()
    assert 'X/ECE' in captured.out and 'X/maxF' in captured.out and 'X/AUROC' in captured.out
    assert f'{len(os.listdir(gt_dir))}/{len(os.listdir(gt_dir))}' in captured.err  # the progress bar, on stderr
    with open(out_json) as f:
        assert json.load(f) == pytest.approx(res, nan_ok=True)
    assert_png(str(tmp_path / 'plots' / 'reliability_X.png'))
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


def test_eval_maps_errors_name_the_problem(maps, tmp_path, capsys):
    pred_dir, gt_dir = maps
    names = sorted(os.listdir(gt_dir))
    # a missing prediction
    part = str(tmp_path / 'part')
    for n in names[1:]:
        _write(osp.join(part, n), cv2.imread(osp.join(pred_dir, n), cv2.IMREAD_GRAYSCALE))
    with pytest.raises(MapError) as exc:
        evaluate_folders(part, gt_dir, sod=False)
    assert f"1 ground-truth mask(s) without a prediction: '{osp.splitext(names[0])[0]}'" in str(exc.value)
    res = evaluate_folders(part, gt_dir, sod=False, allow_unmatched=True)
    assert not math.isnan(res['part/ECE']) and 'part/MAE' not in res
    assert 'scoring 4 common name(s); left out 1 mask(s)' in capsys.readouterr().err
    # a prediction of the wrong size, then resized on request
    small = str(tmp_path / 'small')
    for n in names:
        _write(osp.join(small, n), cv2.resize(cv2.imread(osp.join(pred_dir, n), 0), (64, 64)))
    with pytest.raises(MapError, match=r'prediction of size 64x64 \(WxH\) but ground truth'):
        evaluate_folders(small, gt_dir, sod=False)
    assert not math.isnan(evaluate_folders(small, gt_dir, sod=False, resize_pred=True)['small/ECE'])
    # a 0/1 ground truth mask and a colour prediction
    bad_gt = str(tmp_path / 'badgt')
    for n in names:
        _write(osp.join(bad_gt, n), (cv2.imread(osp.join(gt_dir, n), 0) >= 128).astype(np.uint8))
    with pytest.raises(MaskFormatError, match='a 0/1 or class-index map'):
        evaluate_folders(pred_dir, bad_gt, sod=False)
    colour = str(tmp_path / 'colour')
    for n in names:
        _write(osp.join(colour, n), np.random.default_rng(1).integers(0, 255, (128, 128, 3)).astype(np.uint8))
    with pytest.raises(MapError, match='channels with different values'):
        evaluate_folders(colour, gt_dir, sod=False)
    with pytest.raises(MapError, match='does not exist'):
        evaluate_folders(str(tmp_path / 'nope'), gt_dir)


def test_a_refusal_is_one_line_with_exit_status_1(maps, tmp_path, capsys):
    pred_dir, gt_dir = maps
    colour = str(tmp_path / 'colour')
    for n in sorted(os.listdir(gt_dir)):
        _write(osp.join(colour, n), np.random.default_rng(1).integers(0, 255, (128, 128, 3)).astype(np.uint8))
    with pytest.raises(SystemExit) as e:
        main(['eval-maps', '--pred', colour, '--gt', gt_dir, '--no-sod', '--no-progress'])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith(f'uqseg eval-maps: error: {osp.join(colour, sorted(os.listdir(gt_dir))[0])}: '
                                          'prediction has 3 channels with different values')
    assert 'Traceback' not in err
    with pytest.raises(MapError):  # --debug: the exception itself
        main(['eval-maps', '--pred', colour, '--gt', gt_dir, '--no-sod', '--debug'])
