"""The configs build their evaluators: the test metrics, and the validation metrics ASLP reads."""
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.registry import METRICS, MODELS

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO


def test_configs_build_the_test_evaluators():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'bce_sod_demo.py'))
    types_ = [e['type'] for e in cfg.test_evaluator]
    assert types_ == ['PixelAccuracyMetric', 'PixelCalibrationMetric', 'PixelUncertaintyMetric', 'OODDetectionMetric',
                      'SODMetric']
    for e in cfg.test_evaluator + cfg.val_evaluator:
        METRICS.build(e)
    assert [e['type'] for e in Config.fromfile(osp.join(REPO, 'configs', 'bce_sod.py')).test_evaluator] == types_


CONFIGS = sorted(f for f in os.listdir(osp.join(REPO, 'configs')) if f.endswith('.py'))


@pytest.mark.parametrize('config', [c for c in CONFIGS if '_sod' in c])
def test_val_evaluator_measures_pixel_accuracy_for_aslp(config):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    assert 'PixelAccuracyMetric' in [e['type'] for e in evaluators]
    for e in evaluators:
        METRICS.build(e)


LAYERS = {'edl': 'EDLLayer', 'tedl': 'EDLLayer', 'dismax': 'DisMaxLayer', 'isomax': 'IsoMaxPlusLayer'}


@pytest.mark.parametrize('config', [c for c in CONFIGS if c.split('_')[0] in LAYERS or c.startswith('ce_')])
def test_head_configs_build_their_model_and_evaluators(config):
    """The CPU demo configs and the mmseg:: based GPU configs (Cityscapes, ADE20K) of the output
    layers build (no weights are loaded: init_weights is not called) with the layer they name."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    model = MODELS.build(cfg.model)
    layer = type(model.decode_head.conv_seg).__name__
    assert layer == LAYERS.get(config.split('_')[0], 'Conv2d')
    assert model.decode_head.conv_seg.in_channels == model.decode_head.channels
    for e in (cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]):
        METRICS.build(e)
    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    assert ('TEDLHook' in hooks) == config.startswith('tedl_')


@pytest.mark.parametrize('config', [c for c in CONFIGS if c.startswith('ldl_')])
def test_ldl_configs_build_an_ldl_segmentor_with_its_teacher_hook_and_cutmix(config):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'LDLEncoderDecoder'
    assert [type(a).__name__ for a in model.data_preprocessor.batch_augments.augments] == ['SegCutMix']
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert hooks[0] == ('EMATeacherHook' if '_online_' in config else 'CheckpointTeacherHook')
    for e in (cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]):
        METRICS.build(e)
