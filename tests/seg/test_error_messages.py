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
