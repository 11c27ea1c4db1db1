"""TemperatureScaledEncoderDecoder divides the test-time logits by T before mmseg's softmax, under
whole and slide inference and flip TTA (MeanProbabilitySegTTAModel); bad temperatures, EDL heads
and a missing required T are refused."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from tests.helpers.cfg import REPO

pytestmark = pytest.mark.usefixtures('one_thread')


def _model_cfg(**kw):
    cfg = Config.fromfile(f'{REPO}/configs/ce_shapes_demo.py').model
    cfg = copy.deepcopy(cfg)
    cfg.update(kw)
    return cfg


def _pair(temperature, test_cfg=None):
    torch.manual_seed(0)
    plain = MODELS.build(_model_cfg(**({'test_cfg': test_cfg} if test_cfg else {})))
    scaled = MODELS.build(_model_cfg(type='TemperatureScaledEncoderDecoder', temperature=temperature,
                                     **({'test_cfg': test_cfg} if test_cfg else {})))
    missing, unexpected = scaled.load_state_dict(plain.state_dict(), strict=True)
    assert missing == [] and unexpected == []
    assert 'temperature' not in scaled.state_dict()  # training checkpoints hold no T: only calibrate.py writes it
    return plain.eval(), scaled.eval()


def _samples(n=2, size=(64, 64), flip=False):
    out = []
    for i in range(n):
        s = SegDataSample(metainfo=dict(img_path=f'{i}.png', img_shape=size, ori_shape=size, pad_shape=size,
                                        padding_size=[0, 0, 0, 0],
                                        flip=flip, flip_direction='horizontal' if flip else None))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1,) + size))
        out.append(s)
    return out


@pytest.mark.parametrize('test_cfg', [None, dict(mode='slide', crop_size=(40, 40), stride=(24, 24))])
@pytest.mark.parametrize('temperature', [1.7, [0.5, 1.0, 2.0, 4.0]])
def test_predict_logits_are_the_plain_logits_over_t(temperature, test_cfg):
    plain, scaled = _pair(temperature, test_cfg)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = plain.predict(x, _samples())
        b = scaled.predict(x, _samples())
    t = torch.tensor(temperature).view(-1, 1, 1)
    for sa, sb in zip(a, b):
        torch.testing.assert_close(sb.seg_logits.data, sa.seg_logits.data / t, rtol=1e-5, atol=1e-6)
    if isinstance(temperature, float):  # one T keeps the argmax ...
        for sa, sb in zip(a, b):
            # ... of every pixel whose two top logits lie further apart than float32 rounding: z / T
            # (and slide inference's sum of z / T over windows) can merge logits an ulp or two apart,
            # and which pixels have such near ties depends on the CPU's convolution arithmetic
            top2 = sa.seg_logits.data.topk(2, dim=0).values
            clear = (top2[0] - top2[1]) > 1e-5 * top2[0].abs().clamp(min=1)
            assert float(clear.float().mean()) > 0.99
            assert torch.equal(sa.pred_sem_seg.data[0][clear], sb.pred_sem_seg.data[0][clear])


def test_flip_tta_merges_the_probabilities_of_the_scaled_logits():
    plain, scaled = _pair(2.5)
    tta = MODELS.build(dict(type='MeanProbabilitySegTTAModel', module=scaled))
    x = torch.randn(1, 3, 64, 64)
    views = [scaled.predict(x, _samples(1)), scaled.predict(x.flip(3), _samples(1, flip=True))]
    merged = tta.merge_preds([[views[0][0], views[1][0]]])[0]
    with torch.no_grad():
        z0 = plain.predict(x, _samples(1))[0].seg_logits.data
        z1 = plain.predict(x.flip(3), _samples(1, flip=True))[0].seg_logits.data
    want = ((z0 / 2.5).softmax(0) + (z1 / 2.5).softmax(0)) / 2
    torch.testing.assert_close(merged.seg_logits.data.softmax(0), want, rtol=1e-5, atol=1e-6)
    assert torch.equal(merged.pred_sem_seg.data[0], want.argmax(0))


def test_one_channel_tta_thresholds_the_mean_probability():
    """mmseg's SegTTAModel applies sigmoid to stored probabilities; ours averages them."""
    cfg = Config.fromfile(f'{REPO}/configs/bce_sod_demo.py').model
    model = MODELS.build(cfg).eval()
    tta = MODELS.build(dict(type='MeanProbabilitySegTTAModel', module=model))
    p = [torch.tensor([[[0.1, 0.9], [0.4, 0.45]]]), torch.tensor([[[0.3, 0.7], [0.8, 0.2]]])]
    views = []
    for v in p:
        s = SegDataSample(metainfo=dict(img_path='a.png'))
        s.seg_logits = PixelData(data=v)
        views.append(s)
    merged = tta.merge_preds([views])[0]
    mean = (p[0] + p[1]) / 2
    torch.testing.assert_close(merged.seg_logits.data, mean)
    assert torch.equal(merged.pred_sem_seg.data, (mean > 0.5).float())


@pytest.mark.parametrize('bad', [0, -1.0, float('nan'), float('inf'), []])
def test_a_temperature_that_is_not_positive_is_refused(bad):
    with pytest.raises(ValueError, match='temperature must be a finite number > 0'):
        MODELS.build(_model_cfg(type='TemperatureScaledEncoderDecoder', temperature=bad))


def test_per_class_temperatures_must_match_the_channels():
    with pytest.raises(ValueError, match='3 per-class temperatures for a head of 4 output channels'):
        MODELS.build(_model_cfg(type='TemperatureScaledEncoderDecoder', temperature=[1.0, 2.0, 3.0]))


def test_an_evidential_head_is_refused():
    cfg = Config.fromfile(f'{REPO}/configs/edl_shapes_demo.py').model
    cfg.type = 'TemperatureScaledEncoderDecoder'
    with pytest.raises(ValueError, match='log alpha'):
        MODELS.build(cfg)


def test_a_required_temperature_comes_from_the_checkpoint_or_inference_refuses():
    plain, _ = _pair(1.0)
    required = MODELS.build(_model_cfg(type='TemperatureScaledEncoderDecoder', temperature=None)).eval()
    required.load_state_dict(plain.state_dict(), strict=False)
    with pytest.raises(RuntimeError, match='needs T from a checkpoint written by uqseg calibrate'):
        required.predict(torch.randn(1, 3, 64, 64), _samples(1))
    state = dict(plain.state_dict(), temperature=torch.tensor(3.0))
    required.load_state_dict(state)
    assert float(required.temperature) == 3.0
    fixed = MODELS.build(_model_cfg(type='TemperatureScaledEncoderDecoder', temperature=1.5))
    with pytest.warns(UserWarning, match=r"replaces the config's 1.5"):
        fixed.load_state_dict(state)
    assert float(fixed.temperature) == 3.0
    with pytest.raises(ValueError, match="checkpoint's 'temperature' must be a finite number > 0"):
        fixed.load_state_dict(dict(state, temperature=torch.tensor(-1.0)))


def test_tta_of_a_head_without_logits_mixes_its_views_and_averages_their_layer_scores():
    """EDL's views are members: the mixture of their expected probabilities alpha / S, and their
    vacuity (which a mean of softmaxes would destroy) averaged in the sample's seg_vacuity."""
    model = MODELS.build(Config.fromfile(f'{REPO}/configs/edl_shapes_demo.py').model).eval()
    tta = MODELS.build(dict(type='MeanProbabilitySegTTAModel', module=model))
    views = []
    for v in (torch.rand(4, 3, 5) * 3, torch.rand(4, 3, 5) * 3):
        s = SegDataSample(metainfo=dict(img_path='a.png', output_kind='log_alpha', default_score='vacuity'))
        s.seg_logits = PixelData(data=v)
        views.append(s)
    z = [v.seg_logits.data.clone().double() for v in views]
    merged = tta.merge_preds([views])[0]
    mean = (z[0].softmax(0) + z[1].softmax(0)) / 2
    torch.testing.assert_close(merged.seg_logits.data.double().softmax(0), mean, rtol=1e-6, atol=1e-7)
    assert torch.equal(merged.pred_sem_seg.data[0], mean.argmax(0))
    vacuity = (4 / z[0].exp().sum(0) + 4 / z[1].exp().sum(0)) / 2
    torch.testing.assert_close(merged.seg_vacuity.data[0], vacuity)
    assert 'vacuity' in merged.metainfo['member_scores'] and merged.metainfo['member_kinds'] == ['log_alpha'] * 2
