"""Bad input gets an error that names the component, the key, the file or the likely cause."""
import pytest
import torch
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import METRICS, MODELS
from mmseg.structures import SegDataSample

from tests.helpers.cfg import demo_cfg
from tests.helpers.samples import make_sample
from uqseg.core.checks import LabelRangeError


@pytest.mark.parametrize('metric', ['PixelCalibrationMetric', 'PixelUncertaintyMetric', 'OODDetectionMetric',
                                    'PixelAccuracyMetric', 'SODMetric'])
def test_unknown_metric_keyword_names_the_metric_and_its_keys(metric):
    with pytest.raises(TypeError, match=rf"{metric} got unknown argument\(s\) 'per_imge'.*its arguments are "
                                        r"\[.*'collect_device'"):
        METRICS.build(dict(type=metric, per_imge=True))


def test_misspelt_keyword_gets_a_suggestion():
    with pytest.raises(TypeError, match=r"'per_imge' \(did you mean 'per_image'\?\)"):
        METRICS.build(dict(type='PixelCalibrationMetric', per_imge=True))


def test_nan_logits_name_the_image_and_the_checkpoint_as_likely_cause():
    logits = torch.zeros(2, 4, 4)
    logits[1, 0, 0] = float('nan')
    metric = METRICS.build(dict(type='PixelCalibrationMetric'))
    with pytest.raises(ValueError, match=r'img7\.jpg: seg_logits contain 1 non-finite.*checkpoint holds NaN/Inf'):
        metric.process({}, [make_sample(logits, torch.zeros(4, 4, dtype=torch.long), img_path='img7.jpg')])


def test_label_outside_the_classes_names_the_mask_file():
    s = SegDataSample(metainfo=dict(img_path='a.jpg', seg_map_path='masks/a.png', set_name='S'))
    s.seg_logits = PixelData(data=torch.zeros(3, 2, 2))
    s.gt_sem_seg = PixelData(data=torch.tensor([[[0, 1], [7, 2]]]))
    with pytest.raises(ValueError, match=r'a\.jpg: ground truth has label 7 outside 0\.\.2.*mask file masks/a\.png'
                                         r'.*3 output channel'):
        METRICS.build(dict(type='PixelAccuracyMetric')).process({}, [s.to_dict()])


def test_training_label_outside_the_classes_names_image_mask_and_value():
    head = MODELS.build(dict(type='ASLPHead', num_samples=2, head=dict(
        type='FCNHead', in_channels=8, channels=4, num_convs=1, loss_decode=dict(type='SCBCELoss'))))
    samples = []
    for i, value in enumerate((1, 9)):
        s = SegDataSample(metainfo=dict(sample_idx=i, img_shape=(8, 8), img_path=f'im{i}.jpg',
                                        seg_map_path=f'gt{i}.png'))
        label = torch.zeros(1, 8, 8, dtype=torch.long)
        label[0, 3, 3] = value
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    with pytest.raises(LabelRangeError, match=r'image im1\.jpg, mask gt1\.png: label 9 is outside'):
        head.loss_by_feat(head.forward([torch.randn(2, 8, 4, 4)]), samples)


@pytest.mark.parametrize('change,message', [
    (lambda cfg: cfg.custom_hooks[-1].update(val_set='DUTS-TR-vall'),
     r"val_set='DUTS-TR-vall' is not a set of the validation dataset \(its sets: \['DUTS-TR-val'\]\)"),
    (lambda cfg: cfg.__setitem__('val_evaluator', [dict(type='SODMetric')]),
     r"add dict\(type='PixelAccuracyMetric'\) to val_evaluator"),
])
def test_aslp_validation_set_up_is_checked_before_training(demo_root, tmp_path, change, message):
    cfg = demo_cfg(demo_root, str(tmp_path), max_iters=2, val_interval=1, config='configs/aslp_sod_demo.py')
    change(cfg)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=message):
        runner.train()
    assert runner.iter == 0  # nothing trained


def _output_layer_head(output_layer, loss_decode=None, **head):
    head = dict(dict(type='FCNHead', in_channels=8, channels=4, num_convs=1, num_classes=3), **head)
    return MODELS.build(dict(type='OutputLayerHead', head=head, output_layer=output_layer,
                             loss_decode=loss_decode or dict(type='EDLLoss')))


@pytest.mark.parametrize('output_layer,loss,head,error,message', [
    (dict(type='EDLLayer', num_classes=5), None, {}, ValueError,
     r'output_layer\.num_classes=5 but FCNHead has out_channels / num_classes=3; leave output_layer\.num_classes out'),
    (dict(type='EDLLayer', in_channels=16), None, {}, ValueError,
     r'output_layer\.in_channels=16 but FCNHead has channels=4'),
    (dict(type='EDLLayer'), None, dict(num_classes=2, out_channels=1), ValueError,
     r"type='EDLLayer' needs two or more output channels .*FCNHead has out_channels=1 .*num_classes=2 and "
     r'out_channels=2'),
    (dict(type='DisMaxLayer'), dict(type='DisMaxLoss'), dict(num_classes=2, out_channels=1), ValueError,
     r"type='DisMaxLayer' needs two or more output channels .*out_channels=2"),
    (dict(type='EDLLayer', evidence='exp', exp_clamp=200), None, {}, ValueError,
     r'exp_clamp=200: exp evidence overflows float32 in the EDL loss.*use exp_clamp <= '),
    (dict(type='EDLLayer', evidence='sigmoid'), None, {}, ValueError, r"evidence must be one of .*got 'sigmoid'"),
    (dict(type='EDLLayer'), dict(type='CrossEntropyLoss'), {}, ValueError,
     r"EDLLayer trains with EDLLoss; loss_decode must hold exactly one, found 0 among \['CrossEntropyLoss'\]"
     r".*loss_decode=dict\(_delete_=True, type='EDLLoss'"),
    (dict(type='EDLLayer'), dict(type='DisMaxLoss'), {}, ValueError,
     r"EDLLayer trains with EDLLoss; loss_decode must hold exactly one, found 0 among \['DisMaxLoss'\]"),
    (dict(type='EDLLayer'), [dict(type='EDLLoss'), dict(type='DisMaxLoss')], {}, ValueError,
     r'loss_decode DisMaxLoss needs a PrototypeDistanceLayer, not EDLLayer'),
    (dict(type='DisMaxLayer'), dict(type='EDLLoss'), {}, ValueError,
     r'DisMaxLayer trains with DisMaxLoss; loss_decode must hold exactly one, found 0'),
    (None, None, {}, ValueError, r"OutputLayerHead needs output_layer=dict\(type='EDLLayer'"),
], ids=['num_classes', 'in_channels', 'edl-one-channel', 'dismax-one-channel', 'exp_clamp', 'evidence',
        'edl-cross-entropy', 'edl-dismax-loss', 'edl-both-losses', 'dismax-edl-loss', 'no-layer'])
def test_output_layer_head_set_up_errors_name_the_key(output_layer, loss, head, error, message):
    with pytest.raises(error, match=message):
        _output_layer_head(output_layer, loss, **head)


@pytest.mark.parametrize('head,message', [
    (dict(type='SegmenterMaskTransformerHead', in_channels=8, channels=8, num_classes=3, num_layers=1, num_heads=2,
          embed_dims=8),
     r'SegmenterMaskTransformerHead has no conv_seg classifier \(conv_seg=NoneType\); only heads that classify'),
    (dict(type='Mask2FormerHead', in_channels=[8], strides=[4], feat_channels=8, out_channels=8, num_classes=3,
          num_queries=4),
     r'Mask2FormerHead is not a BaseDecodeHead with a conv_seg classifier; .*mask-classification heads'),
], ids=['segmenter', 'mask2former'])
def test_mask_classification_heads_are_refused_naming_the_head(head, message):
    with pytest.raises(TypeError, match=message):
        MODELS.build(dict(type='OutputLayerHead', head=head, output_layer=dict(type='EDLLayer'),
                          loss_decode=dict(type='EDLLoss')))


def test_unknown_score_names_name_the_key(tmp_path):
    from mmseg.registry import HOOKS
    known = r"is not a score; the scores are \('max-prob', 'entropy', .*'vacuity'"
    with pytest.raises(ValueError, match=rf"^score='variance' {known}"):
        METRICS.build(dict(type='PixelUncertaintyMetric', score='variance'))
    with pytest.raises(ValueError, match=rf"^score='nope' {known}"):
        METRICS.build(dict(type='OODDetectionMetric', score='nope'))
    with pytest.raises(ValueError, match=rf"^scores='nope' {known}"):
        HOOKS.build(dict(type='UncertaintyMapHook', scores=['nope']))
    with pytest.raises(ValueError, match=rf"^scores='nope' {known}"):
        HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path), scores=['max-prob', 'nope']))
    with pytest.raises(ValueError, match=rf"^scores='Vacuity' {known}"):
        HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path), scores='Vacuity'))


def test_tedl_and_edl_loss_schedule_errors():
    from mmseg.registry import HOOKS
    with pytest.raises(ValueError, match=r'TEDLHook needs exactly one of switch_iter / switch_epoch, got '
                                         r'switch_iter=None, switch_epoch=None'):
        HOOKS.build(dict(type='TEDLHook'))
    with pytest.raises(ValueError, match=r'TEDLHook needs exactly one of switch_iter / switch_epoch'):
        HOOKS.build(dict(type='TEDLHook', switch_iter=10, switch_epoch=1))
    with pytest.raises(ValueError, match=r'TEDLHook: switch_iter must be an int >= 0, got -1'):
        HOOKS.build(dict(type='TEDLHook', switch_iter=-1))
    with pytest.raises(ValueError, match=r'TEDLHook: switch_epoch must be an int >= 0, got 1\.5'):
        HOOKS.build(dict(type='TEDLHook', switch_epoch=1.5))
    with pytest.raises(ValueError, match=r'EDLLoss: kl_anneal_iters and kl_anneal_start must be >= 0, got -1, 0'):
        MODELS.build(dict(type='EDLLoss', kl_anneal_iters=-1))
