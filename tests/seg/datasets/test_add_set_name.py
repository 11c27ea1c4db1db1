"""Issue 19: per-set metrics on any mmseg dataset. ``AddSetName`` (mmseg's ``TRANSFORMS``, the transform
shared with the mmpretrain front end) tags the samples of a plain ``BaseSegDataset``; a ``ConcatDataset``
of two such splits (the shapes demo's ``test`` as in-distribution, ``ood`` as OOD) goes through
mmengine's ``Runner.test`` and every uqseg metric reports each set on its own. The per-set pixel
accuracy is checked against a count written from the definition on the model's own predictions."""
import re

import pytest
import torch
from mmengine.runner import Runner
from mmseg.registry import TRANSFORMS
from mmseg.structures import SegDataSample

import uqseg  # noqa: F401
from tests.helpers.cfg import shapes_cfg
from uqseg.seg.datasets import AddSetName
from uqseg.seg.metrics.prediction import set_name_of

pytestmark = pytest.mark.usefixtures('one_thread')
IGNORE = (255, 254)
CLASSES = ('background', 'disk', 'box', 'triangle')


def _split(root, split, set_name, where):
    """A plain mmseg BaseSegDataset of one split folder, tagged by AddSetName before or after packing."""
    load = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    tag = dict(type='AddSetName', set_name=set_name)
    if where == 'after_pack':
        pipeline = [*load, dict(type='PackSegInputs'), tag]
    else:  # before packing: PackSegInputs must carry the key
        meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor', 'flip',
                     'flip_direction', 'reduce_zero_label', 'set_name')
        pipeline = [*load, tag, dict(type='PackSegInputs', meta_keys=meta_keys)]
    return dict(type='BaseSegDataset', data_root=root, img_suffix='.png', seg_map_suffix='.png',
                metainfo=dict(classes=CLASSES), pipeline=pipeline,
                data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'))


def test_the_transform_sets_the_key_or_the_packed_metainfo():
    t = TRANSFORMS.build(dict(type='AddSetName', set_name='ood'))
    assert isinstance(t, AddSetName) and repr(t) == "AddSetName(set_name='ood')"
    assert t(dict(img_path='a.png'))['set_name'] == 'ood'
    packed = t(dict(inputs=torch.zeros(3, 2, 2), data_samples=SegDataSample(metainfo=dict(set_name='x'))))
    assert packed['data_samples'].metainfo['set_name'] == 'ood' and set_name_of(packed['data_samples']) == 'ood'
    tta = t(dict(inputs=[torch.zeros(3, 2, 2)] * 2, data_samples=[SegDataSample(), SegDataSample()]))
    assert [s.metainfo['set_name'] for s in tta['data_samples']] == ['ood', 'ood']
    for bad in ('', None, 3):
        want = f'AddSetName: set_name must be a non-empty string, got {bad!r}'
        with pytest.raises(ValueError, match=re.escape(want)):
            TRANSFORMS.build(dict(type='AddSetName', set_name=bad))


@pytest.mark.parametrize('where', ['after_pack', 'before_pack'])
def test_a_concat_of_two_base_seg_datasets_reports_each_set(shapes_root, tmp_path, where):
    cfg = shapes_cfg(shapes_root, str(tmp_path))
    cfg.experiment_name = f'add_set_name_{where}'
    cfg.log_level = 'WARNING'
    cfg.test_dataloader.dataset = dict(type='ConcatDataset', datasets=[
        _split(shapes_root, 'test', 'id', where), _split(shapes_root, 'ood', 'ood', where)])
    cfg.test_evaluator = [
        dict(type='PixelAccuracyMetric', ignore_index=IGNORE),
        dict(type='PixelCalibrationMetric', n_bins=15, ignore_index=IGNORE),
        dict(type='OODDetectionMetric', ood_sets=['ood'], ood_index=254, score='max-prob')]
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    for name in ('id', 'ood'):
        assert {f'{name}/PixelAcc', f'{name}/ECE', f'{name}/MCE'} <= set(metrics)
    assert not any(k.startswith('all/') for k in metrics), sorted(metrics)
    assert any(k.startswith('ood/') and 'AUROC' in k for k in metrics if 'PixelAcc' not in k and 'ECE' not in k)

    # pixel accuracy per set from the definition: argmax == label over the valid pixels, pooled per set
    correct, valid = {}, {}
    runner.model.eval()
    with torch.no_grad():
        for batch in runner.test_dataloader:
            for s in runner.model.test_step(batch):
                label = s.gt_sem_seg.data[0]
                ok = torch.ones_like(label, dtype=torch.bool)
                for v in IGNORE:
                    ok &= label != v
                hit = (s.seg_logits.data.double().argmax(0) == label) & ok
                name = s.metainfo['set_name']
                correct[name] = correct.get(name, 0) + int(hit.sum())
                valid[name] = valid.get(name, 0) + int(ok.sum())
    assert sorted(valid) == ['id', 'ood']
    for name in ('id', 'ood'):
        assert metrics[f'{name}/PixelAcc'] == pytest.approx(correct[name] / valid[name], abs=1e-12)
