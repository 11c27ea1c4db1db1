"""The named scores of an output layer's channels (EDL's vacuity, DisMax's MDS / MMLS / MMLES, ...) as
the metrics read them: each sample carries what its head outputs (metainfo output_kind / output_source
/ default_score), ``score_map`` maps the score onto a confidence, and a score the sample's outputs do
not have is refused."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from tests.helpers.metrics import build, run
from tests.helpers.ranking import auroc_tie_bound
from tests.helpers.samples import make_sample
from uqseg.core.scores import SCORE_KINDS, SCORES, raw_score, score_confidence
from uqseg.seg.metrics.prediction import raw_score_map, read_prediction, score_key_map, score_map
from uqseg.seg.outputs import OWN_SCORE, ModelOutput

K = 4
OUTPUTS = {'log_alpha': ModelOutput('log_alpha', 'EDLLayer in OutputLayerHead', 'vacuity'),
           'distance_logits': ModelOutput('distance_logits', 'DisMaxLayer in OutputLayerHead', 'MMLES')}


def _from(kind, sample):
    """``sample`` as the segmentor of a head with outputs of ``kind`` writes it (None: a plain head)."""
    if kind is not None and kind != 'logits':
        sample.update(OUTPUTS[kind].metainfo())
    return sample


def _channels(kind, h=5, w=6, seed=0):
    """Channels of each output kind: logits, log alpha (>= 0), distance logits (<= 0)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(K, h, w, generator=g) * 2
    if kind == 'log_alpha':
        return torch.log1p(torch.nn.functional.softplus(f))
    if kind == 'distance_logits':
        return -(torch.rand(K, h, w, generator=g) * 6)
    return f


def _sample(z, seed=0, ignore=True, kind=None):
    g = torch.Generator().manual_seed(seed + 100)
    y = torch.randint(0, z.shape[0], z.shape[1:], generator=g)
    if ignore:
        y[torch.rand(z.shape[1:], generator=g) < 0.1] = 255
    return _from(kind, make_sample(z, y))


def _kind_of(score):
    return SCORE_KINDS[score][-1] if score in ('vacuity', 'MDS', 'MMLS', 'MMLES') else 'logits'


@pytest.mark.parametrize('score', SCORES)
def test_score_map_is_the_confidence_of_the_raw_score(score):
    kind = _kind_of(score)
    z = _channels(kind)
    s = _sample(z, kind=kind)
    got = score_map(read_prediction(s), s, score)
    want = score_confidence(score, raw_score(score, z, dim=0), K)
    assert got.shape == (5, 6) and got.dtype == torch.float32
    torch.testing.assert_close(got, want.float(), atol=1e-6, rtol=0)
    assert float(got.min()) >= 0 and float(got.max()) <= 1


def test_named_scores_by_their_definitions():
    z = _channels('log_alpha')
    s = _sample(z, kind='log_alpha')
    pred = read_prediction(s)
    u = K / z.double().exp().sum(0)  # K / S, alpha = exp(log alpha)
    torch.testing.assert_close(score_map(pred, s, 'vacuity').double(), 1 - u, atol=1e-6, rtol=0)
    torch.testing.assert_close(raw_score_map(pred, 'vacuity'), u, atol=1e-12, rtol=0)
    z = _channels('distance_logits')
    s = _sample(z, kind='distance_logits')
    pred = read_prediction(s)
    mds = z.double().max(0).values
    torch.testing.assert_close(score_map(pred, s, 'MDS').double(), 1 / (1 - mds), atol=1e-6, rtol=0)
    p = z.double().softmax(0)
    mmles = mds + z.double().mean(0) + (p * p.log()).sum(0)
    torch.testing.assert_close(raw_score_map(pred, 'MMLES'), mmles, atol=1e-9, rtol=0)


@pytest.mark.parametrize('kind,own', [('log_alpha', 'vacuity'), ('distance_logits', 'MMLES'), (None, 'max-prob')])
def test_own_score_is_the_samples_and_max_prob_without_output_metainfo(kind, own):
    s = _sample(_channels(kind or 'logits'), kind=kind)
    pred = read_prediction(s)
    torch.testing.assert_close(score_map(pred, s, OWN_SCORE), score_map(pred, s, own), atol=0, rtol=0)
    if kind is None:
        torch.testing.assert_close(score_map(pred, s, OWN_SCORE), pred.probs.max(0).values, atol=0, rtol=0)


def _vacuity_samples(n_img=3, h=24, w=24):
    """Log-alpha channels with labels drawn so that low vacuity goes with correct predictions."""
    out = []
    for i in range(n_img):
        g = torch.Generator().manual_seed(40 + i)
        z = torch.log1p(torch.nn.functional.softplus(torch.randn(K, h, w, generator=g) * 3))
        conf = 1 - K / z.exp().sum(0)
        pred = z.argmax(0)
        y = torch.where(torch.rand(h, w, generator=g) < conf, pred, torch.randint(0, K, (h, w), generator=g))
        y[torch.rand(h, w, generator=g) < 0.05] = 255
        out.append(_from('log_alpha', make_sample(z, y, img_path=f'{i}.jpg')))
    return out


def test_vacuity_auroc_matches_sklearn_within_the_bins():
    samples = _vacuity_samples()
    out = run(build('PixelUncertaintyMetric', score='vacuity'), samples)
    conf, correct = [], []
    for s in samples:
        z, y = s['seg_logits']['data'], s['gt_sem_seg']['data'][0]
        keep = y != 255
        conf.append((1 - K / z.double().exp().sum(0))[keep])
        correct.append((z.argmax(0) == y)[keep])
    conf, correct = torch.cat(conf).numpy(), torch.cat(correct).numpy()
    assert 0.2 < correct.mean() < 0.9  # both classes well represented
    want = roc_auc_score(correct, conf)
    tol = auroc_tie_bound(conf[correct], conf[~correct])
    assert tol < 1e-2
    assert abs(out['A/AUROC'] - want) <= tol + 1e-12
    # the own score of an EDL head is vacuity
    own = run(build('PixelUncertaintyMetric', score=OWN_SCORE), samples)
    assert own['A/AUROC'] == out['A/AUROC']
    # and it ranks differently from max-prob (a real check that vacuity was used)
    mp = run(build('PixelUncertaintyMetric'), samples)
    assert not math.isclose(mp['A/AUROC'], out['A/AUROC'], abs_tol=1e-6)


def test_vacuity_of_a_plain_heads_sample_names_the_image_the_score_and_the_edl_layer():
    s = _sample(_channels('log_alpha'))
    msg = (r"x\.jpg: score='vacuity' needs an EDL layer .*output_layer=dict\(type='EDLLayer'\).*"
           r'a plain decode head outputs logits')
    with pytest.raises(ValueError, match=msg):
        score_map(read_prediction(s), s, 'vacuity')
    m = build('PixelUncertaintyMetric', score='vacuity')  # the name is known: building is fine
    with pytest.raises(ValueError, match=msg):
        m.process({}, [s])
    with pytest.raises(ValueError, match=msg):
        build('OODDetectionMetric', ood_sets=['B'], score='vacuity').process({}, [s])


def test_distance_score_on_log_alpha_is_refused():
    s = _sample(_channels('log_alpha'), kind='log_alpha')
    with pytest.raises(ValueError, match=r"score='MMLES' needs a DisMax / IsoMax\+ layer.*but EDLLayer in "
                                         r"OutputLayerHead outputs log_alpha.*'vacuity'"):
        score_map(read_prediction(s), s, 'MMLES')
    s = _sample(_channels('distance_logits'), kind='distance_logits')
    with pytest.raises(ValueError, match=r"score='vacuity' needs an EDL layer.*outputs distance_logits"):
        build('PixelUncertaintyMetric', score='vacuity').process({}, [s])


def _binary_sample():
    p = torch.tensor([[[0.0, 0.1, 0.3, 0.5], [0.6, 0.8, 0.95, 1.0]]])
    return make_sample(p, torch.tensor([[0, 0, 1, 1], [1, 0, 1, 255]]))


def test_binary_samples_refuse_vacuity():
    s = _from('log_alpha', _binary_sample())  # even with log-alpha metainfo, one sigmoid channel has no Dirichlet
    pred = read_prediction(s)
    for score in ('vacuity', 'MDS'):
        with pytest.raises(ValueError, match=rf"x\.jpg: score='{score}' needs .* layer .*but the one-channel "
                                             r'\(sigmoid\) head outputs probs \(probabilities\)'):
            raw_score_map(pred, score)
    msg = "score='vacuity' needs an EDL layer .*but the one-channel \\(sigmoid\\) head outputs probs"
    with pytest.raises(ValueError, match=msg):
        score_map(pred, s, 'vacuity')
    with pytest.raises(ValueError, match=msg):
        build('PixelUncertaintyMetric', score='vacuity').process({}, [s])


def test_raw_score_map_of_binary_heads():
    s = _binary_sample()
    pred = read_prediction(s)
    p = s['seg_logits']['data'][0].double().numpy()
    with np.errstate(divide='ignore', invalid='ignore'):
        h = -np.nan_to_num(p * np.log(p)) - np.nan_to_num((1 - p) * np.log(1 - p))  # natural log, 0 log 0 = 0
    np.testing.assert_allclose(raw_score_map(pred, 'max-prob').numpy(), np.maximum(p, 1 - p), atol=1e-7)
    np.testing.assert_allclose(raw_score_map(pred, 'MPS').numpy(), np.maximum(p, 1 - p), atol=1e-7)
    np.testing.assert_allclose(raw_score_map(pred, 'entropy').numpy(), h / math.log(2), atol=1e-7)
    np.testing.assert_allclose(raw_score_map(pred, 'ES').numpy(), -h, atol=1e-7)
    np.testing.assert_allclose(raw_score_map(pred, 'margin').numpy(), np.abs(2 * p - 1), atol=1e-7)
    assert raw_score_map(pred, 'entropy')[0, 0] == 0 and raw_score_map(pred, 'entropy')[1, 3] == 0  # p = 0, 1
    assert raw_score_map(pred, 'entropy')[0, 3] == pytest.approx(1.0)  # p = 1/2
    # their confidences: the binary score_map (C = 2)
    for score in ('max-prob', 'entropy', 'ES', 'margin'):
        want = score_confidence(score, raw_score_map(pred, score), 2)
        torch.testing.assert_close(score_map(pred, s, score).double(), want.double(), atol=1e-6, rtol=0)


HIGHER_IS_CONFIDENT = {'entropy': False, 'vacuity': False}


@pytest.mark.parametrize('score', SCORES)
def test_score_key_map_orders_pixels_as_the_score(score):
    """The ranking key of every named score orders the pixels as its definition (float64 here, of
    moderate channels where nothing saturates), with the score's direction."""
    kind = _kind_of(score)
    z = _channels(kind, h=20, w=30, seed=3)
    s = _sample(z, kind=kind)
    key = score_key_map(read_prediction(s), score).flatten()
    assert key.dtype == torch.float64 and key.shape == (600,)
    raw = raw_score(score, z.double(), dim=0).flatten() * (1 if HIGHER_IS_CONFIDENT.get(score, True) else -1)
    d_raw, d_key = raw[:, None] - raw[None, :], key[:, None] - key[None, :]
    clear = d_raw.abs() > 1e-9 * raw.abs().max()
    assert clear.float().mean() > 0.99
    assert torch.equal(torch.sign(d_raw[clear]), torch.sign(d_key[clear]))
    # 'own' is the sample's own score
    own = OUTPUTS[kind].score if kind in OUTPUTS else 'max-prob'
    assert torch.equal(score_key_map(read_prediction(s), OWN_SCORE), score_key_map(read_prediction(s), own))
