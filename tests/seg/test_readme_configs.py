"""The README's configuration examples build as written: the ones on `mmseg::` bases on those bases."""
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmseg.registry import HOOKS, METRICS, MODELS

from tests.helpers.cfg import REPO
from uqseg.core.sc_bce import SCBCELoss
from uqseg.seg.models.heads import ASLPHead
from uqseg.seg.models.segmentors.ensemble_segmentor import member_specs


def readme_blocks() -> list[str]:
    """The Python blocks of the README and of docs/usage.md (where the config examples live)."""
    text = ''
    for name in ('README.md', 'docs/usage.md'):
        with open(osp.join(REPO, name), encoding='utf-8') as f:
            text += f.read()
    return re.findall(r'```python\n(.*?)```', text, flags=re.S)


def _config(tmp_path, marker: str) -> Config:
    blocks = [b for b in readme_blocks() if marker in b and 'mmpretrain::' not in b]  # the mmseg examples
    assert len(blocks) == 1, f'expected one README config block with {marker!r}, found {len(blocks)}'
    path = tmp_path / 'readme_config.py'
    path.write_text(blocks[0])
    return Config.fromfile(str(path))


def test_aslp_example_on_an_mmseg_base_builds_as_written(tmp_path):
    cfg = _config(tmp_path, "type='ASLPHead'")
    assert "_base_ = ['mmseg::" in (tmp_path / 'readme_config.py').read_text()
    head_cfg = cfg.model.decode_head
    assert 'use_sigmoid' not in head_cfg.loss_decode  # _delete_ dropped the base's CrossEntropyLoss keys
    head = MODELS.build(head_cfg)
    assert isinstance(head, ASLPHead)
    assert type(head)._wrapped.__name__ == 'UPerHead'  # the base's head, with its merged keys
    assert head.in_channels == [256, 512, 1024, 2048] and head.out_channels == 1 and head.threshold == 0.5
    assert isinstance(head.loss_decode, SCBCELoss) and head.loss_decode.mode == 'sample'
    for hook in cfg.custom_hooks:
        HOOKS.build(hook)
    for metric in cfg.val_evaluator:
        METRICS.build(metric)


def test_aslp_example_without_delete_fails_naming_the_fix(tmp_path):
    cfg = _config(tmp_path, "type='ASLPHead'")
    text = (tmp_path / 'readme_config.py').read_text().replace('_delete_=True, ', '')
    (tmp_path / 'merged.py').write_text(text)
    merged = Config.fromfile(str(tmp_path / 'merged.py'))
    assert cfg.model.decode_head.loss_decode.type == merged.model.decode_head.loss_decode.type
    with pytest.raises(TypeError, match=r"'use_sigmoid'.*_delete_=True"):
        MODELS.build(merged.model.decode_head)


def test_own_project_example_on_an_mmseg_base_builds(tmp_path):
    cfg = _config(tmp_path, "type='SODDataset', layout='ECSSD'")
    model = MODELS.build(cfg.model)
    assert model.decode_head.out_channels == 1 and model.decode_head.threshold == 0.5
    for metric in cfg.test_evaluator:
        METRICS.build(metric)


@pytest.mark.parametrize('marker, layer, wrapped, hook', [
    ("type='EDLLayer', evidence='relu'", 'EDLLayer', 'DepthwiseSeparableASPPHead', None),
    ("type='TEDLHook', switch_iter=40000", 'EDLLayer', 'DepthwiseSeparableASPPHead', 'TEDLHook'),
    ("type='DisMaxLayer'", 'DisMaxLayer', 'SegformerHead', None),
])
def test_output_layer_examples_on_mmseg_bases_build_as_written(tmp_path, marker, layer, wrapped, hook):
    cfg = _config(tmp_path, marker)
    assert "_base_ = ['mmseg::" in (tmp_path / 'readme_config.py').read_text()
    head = MODELS.build(cfg.model.decode_head)
    assert type(head).__name__ == f'OutputLayer{wrapped}' and type(head.conv_seg).__name__ == layer
    assert head.conv_seg.in_channels == head.channels and head.conv_seg.num_classes == head.out_channels
    assert 'use_sigmoid' not in cfg.model.decode_head.loss_decode
    for h in cfg.get('custom_hooks', []):
        HOOKS.build(h)
    assert hook is None or hook in [h['type'] for h in cfg.custom_hooks]
    evaluators = cfg.get('test_evaluator', [])
    for metric in evaluators if isinstance(evaluators, list) else [evaluators]:
        METRICS.build(metric)


def test_temperature_scaling_example_builds_on_its_mmseg_base(tmp_path):
    cfg = _config(tmp_path, "type='TemperatureScaledEncoderDecoder', temperature=1.7")
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'TemperatureScaledEncoderDecoder' and float(model.temperature) == pytest.approx(1.7)
    assert type(model.decode_head).__name__ == 'DepthwiseSeparableASPPHead'  # the base's model, kept


def test_ldl_example_builds_on_its_mmseg_base(tmp_path):
    cfg = _config(tmp_path, "type='LDLEncoderDecoder'")
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'LDLEncoderDecoder' and type(model.decode_head.loss_decode).__name__ == 'LDLLoss'
    assert model.data_preprocessor.size == (512, 1024)  # the base's preprocessor keys survive the type change
    assert [h.__class__.__name__ for h in map(HOOKS.build, cfg.custom_hooks)] == ['EMATeacherHook',
                                                                                    'ResumeRandomStateHook']


@pytest.mark.parametrize('marker, model_type', [("type='EnsembleSegmentor'", 'EnsembleSegmentor'),
                                                ("type='MCDropoutEncoderDecoder'", 'MCDropoutEncoderDecoder')])
def test_baseline_examples_build_on_the_shapes_demo(tmp_path, marker, model_type):
    blocks = [b for b in readme_blocks() if marker in b]
    assert len(blocks) == 1, f'expected one README block with {marker!r}'
    path = tmp_path / 'baseline.py'
    path.write_text(f"_base_ = [{osp.join(REPO, 'configs', 'ce_shapes_demo.py')!r}]\n" + blocks[0])
    cfg = Config.fromfile(str(path))
    assert cfg.model.type == model_type
    if model_type == 'EnsembleSegmentor':  # its members' configs resolve (their checkpoints are the user's)
        specs = member_specs(cfg.model.members)
        assert len(specs) == 5 and specs[4].checkpoint.endswith('seed4/iter_800.pth')
        assert all(s.model['decode_head']['num_classes'] == 4 for s in specs)
    else:
        model = MODELS.build(cfg.model)
        assert model.passes == 10 and model.decode_head.dropout is not None


def test_tta_example_scores_by_mutual_information():
    blocks = [b for b in readme_blocks() if '--tta' in b]
    assert len(blocks) == 1
    metric = METRICS.build(eval(blocks[0].split('test_evaluator = ', 1)[1])[0])
    assert metric.score == 'mutual-information'
