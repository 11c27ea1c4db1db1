"""The hooks that write maps: UncertaintyMapHook (pictures of the first images of each set) and
SavePredictionMapsHook (prediction PNGs per set)."""
import os
import types

import cv2
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample

import uqseg  # noqa: F401
from tests.helpers.files import assert_png


def test_uncertainty_map_hook_writes_first_n_per_set(tmp_path):
    img_path = str(tmp_path / 'img.jpg')
    cv2.imwrite(img_path, (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8))
    hook = HOOKS.build(dict(type='UncertaintyMapHook', num_samples=2, score_field='seg_uncertainty'))
    runner = types.SimpleNamespace(log_dir=str(tmp_path / 'log'), iter=0, model=None)  # a plain model
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
    assert_png(str(folder / 'DUTS-TE' / 'img.png'))
    assert_png(str(folder / 'ADE' / 'm.png'))


def _unnamed_sample(img_path, label=True):
    s = SegDataSample(metainfo=dict(img_path=img_path))  # no set_name
    s.seg_logits = PixelData(data=torch.tensor([[[0.0, 0.5], [1.0, 0.2]]]))
    if label:
        s.gt_sem_seg = PixelData(data=torch.ones(1, 2, 2, dtype=torch.long))
    return s


def test_uncertainty_map_hook_puts_samples_without_set_name_into_all(tmp_path):
    hook = HOOKS.build(dict(type='UncertaintyMapHook', num_samples=1, out_dir=str(tmp_path / 'maps')))
    runner = types.SimpleNamespace(log_dir=str(tmp_path / 'log'), iter=0, model=None)  # a plain model
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, None, [_unnamed_sample('/none/a.jpg'), _unnamed_sample('/none/b.jpg')])
    assert os.listdir(tmp_path / 'maps') == ['all'] and os.listdir(tmp_path / 'maps' / 'all') == ['a.png']


def test_save_prediction_maps_hook_writes_uint8_maps_per_set_default_all(tmp_path):
    hook = HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path / 'out')))
    named = _unnamed_sample('/none/n.jpg', label=False)
    named.set_metainfo(dict(set_name='DUTS/TE'))
    hook.after_test_iter(None, 0, None, [_unnamed_sample('/none/a.jpg'), named])
    assert sorted(os.listdir(tmp_path / 'out')) == ['DUTS_TE', 'all']
    saved = cv2.imread(str(tmp_path / 'out' / 'all' / 'a.png'), cv2.IMREAD_UNCHANGED)
    assert saved.dtype == np.uint8 and saved.tolist() == [[0, 128], [255, 51]]
    assert os.path.isfile(tmp_path / 'out' / 'DUTS_TE' / 'n.png')
