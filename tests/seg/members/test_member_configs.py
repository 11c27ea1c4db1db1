"""The shipped configs of several members build: MC dropout as configured (its one-channel SOD
variant predicting one channel), the ensemble's members from its config (without their
checkpoints, which the ensemble itself then asks for by member)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import METRICS, MODELS

from tests.helpers.cfg import REPO
from tests.seg.members.common import raw_batch
from uqseg.seg.models.segmentors import member_specs

SHAPES_CLASSES = ('background', 'disk', 'box', 'triangle')


def test_the_mc_dropout_config_builds():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mc_dropout_shapes_demo.py'))
    model = MODELS.build(cfg.model)
    assert (type(model).__name__, model.passes, model.seed) == ('MCDropoutEncoderDecoder', 10, 0)
    for e in cfg.test_evaluator:
        METRICS.build(e)


def test_the_ensemble_config_names_five_members_that_build(tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ensemble_shapes_demo.py'))
    specs = member_specs(cfg.model.members)
    assert [osp.basename(s.where) for s in specs] == ['ce_shapes_demo.py'] * 5
    assert [s.checkpoint for s in specs] == [f'work_dirs/baselines/shapes/seed{i}/ce_shapes_demo/iter_800.pth'
                                             for i in range(5)]
    for spec in specs:
        assert spec.classes == SHAPES_CLASSES
        assert type(MODELS.build(spec.model)).__name__ == 'EncoderDecoder'
    for member in cfg.model.members:  # checkpoints that are not there (the shipped ones are the user's to train)
        member.checkpoint = str(tmp_path / osp.basename(osp.dirname(osp.dirname(member.checkpoint))) / 'iter_800.pth')
    with pytest.raises(FileNotFoundError, match=r'member 0 \(.*ce_shapes_demo.py\): checkpoint .*seed0/iter_800.pth'
                                                r"' does not exist \(train the members with uqseg train-members\)"):
        MODELS.build(cfg.model)


def test_the_one_channel_mc_dropout_config_keeps_one_channel():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mc_dropout_sod_demo.py'))
    cfg.model.passes = 2
    model = MODELS.build(cfg.model).eval()
    data = model.data_preprocessor(raw_batch(1, size=(128, 128)), False)
    with torch.no_grad():
        got = model.predict(data['inputs'], data['data_samples'])[0]
    assert got.seg_logits.data.shape == (1, 128, 128) and 0 <= float(got.seg_logits.data.min())
    assert float(got.seg_logits.data.max()) <= 1 and float(got.seg_mutual_information.data.max()) > 0
    assert torch.equal(got.pred_sem_seg.data, (got.seg_logits.data > model.decode_head.threshold).float())
    assert got.metainfo['member_kinds'] == ['probs', 'probs']
