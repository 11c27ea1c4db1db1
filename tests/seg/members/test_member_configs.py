"""The shipped configs of several members build: MC dropout as configured, the ensemble's members
from its config (without their checkpoints, which the ensemble itself then asks for by member)."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.registry import METRICS, MODELS

from tests.helpers.cfg import REPO
from uqseg.seg.models.segmentors import member_specs

SHAPES_CLASSES = ('background', 'disk', 'box', 'triangle')


def test_the_mc_dropout_config_builds():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mc_dropout_shapes_demo.py'))
    model = MODELS.build(cfg.model)
    assert (type(model).__name__, model.passes, model.seed) == ('MCDropoutEncoderDecoder', 10, 0)
    for e in cfg.test_evaluator:
        METRICS.build(e)


def test_the_ensemble_config_names_five_members_that_build():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ensemble_shapes_demo.py'))
    specs = member_specs(cfg.model.members)
    assert [osp.basename(s.where) for s in specs] == ['ce_shapes_demo.py'] * 5
    assert [s.checkpoint for s in specs] == [f'work_dirs/baselines/shapes/seed{i}/ce_shapes_demo/iter_800.pth'
                                             for i in range(5)]
    for spec in specs:
        assert spec.classes == SHAPES_CLASSES
        assert type(MODELS.build(spec.model)).__name__ == 'EncoderDecoder'
    if not osp.isfile(specs[0].checkpoint):
        with pytest.raises(ValueError, match=r'member 0 \(.*ce_shapes_demo.py\): checkpoint .* does not exist '
                                             r'\(train the members with uqseg train-members\)'):
            MODELS.build(cfg.model)
