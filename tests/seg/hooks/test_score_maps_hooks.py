"""The ``scores`` of the map hooks: SavePredictionMapsHook writes ``<image>_<score>.npy`` beside the
prediction PNG and UncertaintyMapHook draws a panel per score, for the scores of the head that produced
each sample (its metainfo; checked against the model before the first image)."""
import os
import types

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import HOOKS, MODELS
from mmseg.structures import SegDataSample
from torch import nn

import uqseg  # noqa: F401
import uqseg.seg.hooks.uncertainty_map_hook as uncertainty_map_hook
from tests.helpers.files import assert_png
from uqseg.core.evidential import vacuity
from uqseg.core.scores import raw_score
from uqseg.seg.outputs import model_output

K = 3


class _Segmentor(nn.Module):
    """What the hooks read of an EncoderDecoder: its ``decode_head``."""

    def __init__(self, head):
        super().__init__()
        self.decode_head = head


def _model(layer='EDLLayer'):
    head = dict(type='FCNHead', in_channels=8, channels=4, num_convs=1, num_classes=K)
    if layer is None:
        return _Segmentor(MODELS.build(head))
    loss = dict(type='EDLLoss') if layer == 'EDLLayer' else dict(type='DisMaxLoss')
    return _Segmentor(MODELS.build(dict(type='OutputLayerHead', head=head, output_layer=dict(type=layer),
                                        loss_decode=loss)))


def _runner(tmp_path, model):
    return types.SimpleNamespace(model=model, log_dir=str(tmp_path / 'log'), iter=0)


def _sample(name, seed, set_name='shapes', label=True, model=None):
    """A prediction of ``model`` (its head's output in the metainfo, as its segmentor writes it;
    None: a plain head's)."""
    g = torch.Generator().manual_seed(seed)
    s = SegDataSample(metainfo=dict(set_name=set_name, img_path=f'/none/{name}.jpg'))
    if model is not None and hasattr(model.decode_head.conv_seg, 'output_kind'):
        s.set_metainfo(model_output(model).metainfo())
    s.seg_logits = PixelData(data=torch.log1p(torch.rand(K, 12, 14, generator=g) * 20))  # log alpha >= 0
    if label:
        s.gt_sem_seg = PixelData(data=torch.randint(0, K, (1, 12, 14), generator=g))
    return s


def test_save_prediction_maps_writes_the_asked_scores(tmp_path):
    out = tmp_path / 'out'
    hook = HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(out), scores=['vacuity', 'max-prob']))
    runner = _runner(tmp_path, _model())
    hook.before_test(runner)
    samples = [_sample('a', 0, model=runner.model), _sample('b', 1, label=False, model=runner.model)]
    hook.after_test_iter(runner, 0, None, samples)
    assert sorted(os.listdir(out / 'shapes')) == ['a.png', 'a_max-prob.npy', 'a_vacuity.npy',
                                                   'b.png', 'b_max-prob.npy', 'b_vacuity.npy']
    for name, s in zip('ab', samples):
        z = s.seg_logits.data
        png = cv2.imread(str(out / 'shapes' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and np.array_equal(png, z.argmax(0).numpy())
        u = np.load(out / 'shapes' / f'{name}_vacuity.npy')
        assert u.dtype == np.float32 and u.shape == (12, 14)
        np.testing.assert_allclose(u, vacuity(z, dim=0).numpy(), rtol=1e-6, atol=0)
        assert 0 < u.min() and u.max() <= 1 and u.std() > 0.01
        mp = np.load(out / 'shapes' / f'{name}_max-prob.npy')
        np.testing.assert_allclose(mp, z.softmax(0).max(0).values.numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize('layer,own', [('EDLLayer', 'vacuity'), ('DisMaxLayer', 'MMLES'), ('IsoMaxPlusLayer', 'MDS')])
def test_save_prediction_maps_writes_the_heads_own_score_by_default(tmp_path, layer, own):
    hook = HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path / 'out')))
    runner = _runner(tmp_path, _model(layer))
    hook.before_test(runner)
    s = _sample('a', 2, model=runner.model)
    if layer != 'EDLLayer':
        s.seg_logits = PixelData(data=-s.seg_logits.data)  # distance logits <= 0
    hook.after_test_iter(runner, 0, None, [s])
    assert sorted(os.listdir(tmp_path / 'out' / 'shapes')) == ['a.png', f'a_{own}.npy']
    m = np.load(tmp_path / 'out' / 'shapes' / f'a_{own}.npy')
    np.testing.assert_allclose(m, raw_score(own, s.seg_logits.data, dim=0).float().numpy(), rtol=1e-6, atol=1e-7)


def test_save_prediction_maps_of_a_plain_or_stage_one_head_write_no_score(tmp_path):
    for i, model in enumerate((None, _model(None))):
        hook = HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path / f'out{i}')))
        runner = _runner(tmp_path, model)
        hook.before_test(runner)
        hook.after_test_iter(runner, 0, None, [_sample('a', 3, model=model)])
        assert os.listdir(tmp_path / f'out{i}' / 'shapes') == ['a.png']
    # TEDL's stage 1: the EDL layer outputs plain logits: no score by default, max-prob as its own
    model = _model()
    model.decode_head.conv_seg.set_evidential(False)
    for scores, written in ((None, ['a.png']), ('own', ['a.png', 'a_max-prob.npy'])):
        folder = tmp_path / f'tedl-{scores}'
        hook = HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(folder), scores=scores))
        hook.before_test(_runner(tmp_path, model))
        hook.after_test_iter(None, 0, None, [_sample('a', 3, model=model)])
        assert sorted(os.listdir(folder / 'shapes')) == written
    # each sample's scores follow its own metainfo: an EDL sample after the switch writes vacuity
    model.decode_head.conv_seg.set_evidential(True)
    hook = HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path / 'switched')))
    hook.after_test_iter(None, 0, None, [_sample('a', 3, model=model), _sample('b', 3)])
    assert sorted(os.listdir(tmp_path / 'switched' / 'shapes')) == ['a.png', 'a_vacuity.npy', 'b.png']


@pytest.mark.parametrize('model', [None, 'plain', 'stage-1'])
def test_scores_the_model_does_not_have_raise_before_the_first_image(tmp_path, model):
    if model == 'plain':
        model = _model(None)
    elif model == 'stage-1':
        model = _model()
        model.decode_head.conv_seg.set_evidential(False)
    msg = r"scores='vacuity' needs an EDL layer .*output_layer=dict\(type='EDLLayer'\).*but "
    save = HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path / 'out'), scores=['vacuity']))
    with pytest.raises(ValueError, match=msg):
        save.before_test(_runner(tmp_path, model))
    draw = HOOKS.build(dict(type='UncertaintyMapHook', scores=['vacuity']))
    with pytest.raises(ValueError, match=msg):
        draw.before_test_epoch(_runner(tmp_path, model))
    assert not (tmp_path / 'out').exists()
    with pytest.raises(ValueError, match=r"scores='MMLES' needs a DisMax / IsoMax\+ layer.*but EDLLayer in "):
        HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path), scores=['MMLES'])).before_test(
            _runner(tmp_path, _model()))


@pytest.fixture
def drawn(monkeypatch):
    """The panels of every figure UncertaintyMapHook draws (the figures are still written)."""
    calls = []
    real = uncertainty_map_hook.save_uncertainty_figure

    def record(image, panels, path, title=''):
        calls.append((path, dict(panels)))
        return real(image, panels, path, title=title)

    monkeypatch.setattr(uncertainty_map_hook, 'save_uncertainty_figure', record)
    return calls


def test_uncertainty_map_hook_draws_a_panel_per_score(tmp_path, drawn):
    hook = HOOKS.build(dict(type='UncertaintyMapHook', num_samples=1, out_dir=str(tmp_path / 'maps'),
                            scores=['vacuity']))
    runner = _runner(tmp_path, _model())
    hook.before_test_epoch(runner)
    s = _sample('a', 4, model=runner.model)
    hook.after_test_iter(runner, 0, None, [s, _sample('b', 5, model=runner.model)])  # the second is beyond num_samples
    assert os.listdir(tmp_path / 'maps' / 'shapes') == ['a.png']
    assert_png(str(tmp_path / 'maps' / 'shapes' / 'a.png'))
    (path, panels), = drawn
    assert path.endswith(os.path.join('shapes', 'a.png'))
    assert list(panels)[-1] == 'vacuity'
    np.testing.assert_allclose(panels['vacuity']['data'], vacuity(s.seg_logits.data, dim=0).numpy(), rtol=1e-6)
    # without scores: the head's own (vacuity) all the same; a plain head has no extra panel
    for model, extra in ((_model(), ['vacuity']), (None, [])):
        drawn.clear()
        hook = HOOKS.build(dict(type='UncertaintyMapHook', num_samples=1, out_dir=str(tmp_path / 'default')))
        hook.before_test_epoch(_runner(tmp_path, model))
        hook.after_test_iter(None, 0, None, [_sample('c', 6, model=model)])
        (_, panels), = drawn
        assert list(panels) == ['ground truth', 'prediction', 'confidence (max p)', 'entropy / log C', 'errors'] + extra
