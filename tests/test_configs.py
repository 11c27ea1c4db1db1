"""The configs build their evaluators: the test metrics, and the validation metrics ASLP reads."""
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.registry import METRICS

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO


def test_configs_build_the_test_evaluators():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'bce_sod_demo.py'))
    types_ = [e['type'] for e in cfg.test_evaluator]
    assert types_ == ['PixelCalibrationMetric', 'PixelUncertaintyMetric', 'OODDetectionMetric', 'SODMetric']
    for e in cfg.test_evaluator + cfg.val_evaluator:
        METRICS.build(e)
    assert [e['type'] for e in Config.fromfile(osp.join(REPO, 'configs', 'bce_sod.py')).test_evaluator] == types_


@pytest.mark.parametrize('config', sorted(f for f in os.listdir(osp.join(REPO, 'configs')) if f.endswith('.py')))
def test_val_evaluator_measures_pixel_accuracy_for_aslp(config):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    assert 'PixelAccuracyMetric' in [e['type'] for e in evaluators]
    for e in evaluators:
        METRICS.build(e)
