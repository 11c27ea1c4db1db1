"""The named scores of output layers (uqseg.core.scores: SCORE_TABLE, SCORES, raw_score,
score_confidence, scores_of, check_score_available, check_score_args; spec sections 2 and 3)
against their definitions written out from softmax / logsumexp, and the order of the [0, 1]
confidences."""
import math

import pytest
import torch

from uqseg.core.scores import (
    INPUT_KINDS,
    OUTPUT_KINDS,
    PROBS,
    SCORE_KINDS,
    SCORE_TABLE,
    SCORES,
    check_score_args,
    check_score_available,
    raw_score,
    score_confidence,
    scores_of,
)

pytestmark = pytest.mark.usefixtures('one_thread')
D64 = torch.float64
HIGHER_IS_CONFIDENT = {'max-prob': True, 'MPS': True, 'ES': True, 'MDS': True, 'MMLS': True, 'MMLES': True,
                       'margin': True, 'entropy': False, 'vacuity': False}


def _definition(score, z):
    """The score of rows z (N, K) written out from softmax / logsumexp, in float64."""
    z = z.double()
    k = z.shape[1]
    p = torch.exp(z - torch.logsumexp(z, 1, keepdim=True))
    plogp = (p * torch.log(p)).sum(1)  # no p underflows for the inputs below
    if score in ('max-prob', 'MPS'):
        return p.max(1).values
    if score == 'margin':
        top2 = p.sort(1, descending=True).values
        return top2[:, 0] - top2[:, 1]
    if score == 'entropy':
        return -plogp / math.log(k)
    if score == 'ES':
        return plogp
    if score == 'vacuity':
        return k / torch.exp(z).sum(1)
    mds = z.max(1).values
    if score == 'MDS':
        return mds
    mmls = mds + z.mean(1)
    return mmls if score == 'MMLS' else mmls + plogp


def _inputs(score, shape, seed):
    """Channels of the kind the score is for: log alpha >= 0 (vacuity), distance logits <= 0
    (MDS / MMLS / MMLES), plain logits otherwise."""
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(*shape, generator=g)
    if score == 'vacuity':
        return z.abs()
    if score in ('MDS', 'MMLS', 'MMLES'):
        return -z.abs()
    return z


def test_scores_and_kinds():
    assert SCORES == ('max-prob', 'entropy', 'margin', 'MPS', 'ES', 'vacuity', 'MDS', 'MMLS', 'MMLES')
    assert set(HIGHER_IS_CONFIDENT) == set(SCORES)
    assert scores_of('logits') == ('max-prob', 'entropy', 'margin', 'MPS', 'ES')
    assert scores_of('log_alpha') == ('max-prob', 'entropy', 'margin', 'MPS', 'ES', 'vacuity')
    assert scores_of('distance_logits') == ('max-prob', 'entropy', 'margin', 'MPS', 'ES', 'MDS', 'MMLS', 'MMLES')
    for name, kinds in SCORE_KINDS.items():
        assert set(kinds) <= set(OUTPUT_KINDS), name
        assert kinds == tuple(k for k in SCORE_TABLE[name].kinds if k != PROBS)
    # probabilities have the functions of p only
    assert scores_of('probs') == ('max-prob', 'entropy', 'margin', 'MPS', 'ES')
    assert INPUT_KINDS == tuple(OUTPUT_KINDS) + ('probs',)
    assert {n: s.higher_is_confident for n, s in SCORE_TABLE.items()} == HIGHER_IS_CONFIDENT
    with pytest.raises(ValueError, match=r"unknown output kind 'logit'"):
        scores_of('logit')


@pytest.mark.parametrize('score', ('max-prob', 'entropy', 'margin', 'MPS', 'ES'))
def test_probability_scores_of_probs_equal_those_of_the_logits(score):
    z = _inputs(score, (40, 6), seed=7).double()
    p = torch.exp(z - torch.logsumexp(z, 1, keepdim=True))
    got = raw_score(score, p, dim=1, kind='probs')
    assert torch.allclose(got.double(), _definition(score, z), rtol=1e-9, atol=1e-12)
    pm = p.T.reshape(6, 5, 8)  # classes on dim 0
    assert torch.allclose(raw_score(score, pm, dim=0, kind='probs').double(), _definition(score, z).reshape(5, 8),
                          rtol=1e-9, atol=1e-12)


def test_raw_score_checks_the_kind_when_given():
    z = torch.rand(3, 4)
    with pytest.raises(ValueError, match=r"score='vacuity' needs an EDL layer .*but my head outputs probs "
                                         r"\(probabilities\)"):
        raw_score('vacuity', z, kind='probs', model='my head')
    with pytest.raises(ValueError, match=r"uq='MDS' needs a DisMax / IsoMax\+ layer.*outputs log_alpha"):
        raw_score('MDS', z, kind='log_alpha', key='uq')
    with pytest.raises(ValueError, match=r"unknown output kind 'alpha'"):
        raw_score('max-prob', z, kind='alpha')
    # kind=None: the score's own kind (softmax of z for the functions of p)
    assert torch.equal(raw_score('max-prob', z), raw_score('max-prob', z, kind='logits'))


@pytest.mark.parametrize('score', SCORES)
def test_raw_score_matches_definition_on_rows_and_maps(score):
    z = _inputs(score, (50, 5), seed=1)
    got = raw_score(score, z, dim=1)
    assert got.shape == (50,)
    assert torch.allclose(got.double(), _definition(score, z), rtol=1e-5, atol=1e-6)
    # a (K, H, W) map with dim=0
    zm = _inputs(score, (5, 4, 6), seed=2)
    gm = raw_score(score, zm, dim=0)
    assert gm.shape == (4, 6)
    want = _definition(score, zm.reshape(5, -1).T).reshape(4, 6)
    assert torch.allclose(gm.double(), want, rtol=1e-5, atol=1e-6)


def test_raw_scores_hand_worked():
    # z = log(1, 1, 2): p = (.25, .25, .5); sum p log p = .5 log .25 + .5 log .5 = -1.5 log 2
    z = torch.log(torch.tensor([[1.0, 1.0, 2.0]], dtype=D64))
    assert raw_score('max-prob', z).item() == pytest.approx(0.5)
    assert raw_score('ES', z).item() == pytest.approx(-1.5 * math.log(2))
    assert raw_score('entropy', z).item() == pytest.approx(1.5 * math.log(2) / math.log(3))
    assert raw_score('vacuity', z).item() == pytest.approx(3 / 4)  # K / S, S = 1 + 1 + 2
    # distance logits z = (-1, -2, -3): MDS -1, MMLS -1 - 2 = -3
    L = torch.tensor([[-1.0, -2.0, -3.0]], dtype=D64)
    assert raw_score('MDS', L).item() == pytest.approx(-1.0)
    assert raw_score('MMLS', L).item() == pytest.approx(-3.0)
    assert raw_score('MMLES', L).item() == pytest.approx(-3.0 + raw_score('ES', L).item())
    # uniform p: entropy 1, ES = -log K; zero evidence: vacuity 1
    assert raw_score('entropy', torch.zeros(1, 4)).item() == pytest.approx(1.0)
    assert raw_score('ES', torch.zeros(1, 4)).item() == pytest.approx(-math.log(4))
    assert raw_score('vacuity', torch.zeros(1, 4)).item() == 1.0


def test_es_exact_where_p_underflows():
    z = torch.tensor([[0.0, -200.0, -200.0]])  # p of the small classes ~1e-87: 0 in float32
    es = raw_score('ES', z)
    assert bool(torch.isfinite(es).all()) and es.item() == pytest.approx(0.0, abs=1e-80)
    assert raw_score('MMLES', z).item() == pytest.approx(0.0 + (-400.0 / 3), rel=1e-9)


def _check_order(conf, raw, higher):
    """Stable argsort of the confidence equals that of raw (or -raw); ties stay ties."""
    key = raw.double() if higher else -raw.double()
    assert torch.equal(torch.argsort(conf.double(), stable=True), torch.argsort(key, stable=True))
    eq_raw = raw[:, None] == raw[None, :]
    eq_conf = conf[:, None] == conf[None, :]
    assert torch.equal(eq_raw, eq_conf)


@pytest.mark.parametrize('score', SCORES)
def test_score_confidence_in_unit_interval_and_order_preserving(score):
    k = 5
    z = _inputs(score, (200, k), seed=3)
    raw = raw_score(score, z, dim=1)
    # ties: duplicated raw values. (Duplicated rows of z need not give equal raw scores on every
    # CPU: an element-wise op may run a row in the vector body and its copy in the scalar tail,
    # which round differently, e.g. torch's log1p; score_confidence itself is +, -, / and clamp,
    # correctly rounded on any CPU, so equal raw values give equal confidences exactly.)
    raw = torch.cat([raw, raw[:20], raw[5:10]])
    conf = score_confidence(score, raw, k)
    assert conf.shape == raw.shape
    assert bool(((conf >= 0) & (conf <= 1)).all()), (conf.min(), conf.max())
    _check_order(conf, raw, HIGHER_IS_CONFIDENT[score])
    # on a map
    zm = _inputs(score, (k, 8, 8), seed=4)
    rm = raw_score(score, zm, dim=0)
    cm = score_confidence(score, rm, k)
    assert bool(((cm >= 0) & (cm <= 1)).all())
    _check_order(cm.flatten(), rm.flatten(), HIGHER_IS_CONFIDENT[score])


def test_score_confidence_values():
    raw = torch.tensor([-9.0, -1.0, 0.0], dtype=D64)
    for s in ('MDS', 'MMLS', 'MMLES'):
        assert torch.allclose(score_confidence(s, raw, 3), torch.tensor([0.1, 0.5, 1.0], dtype=D64))
    u = torch.tensor([0.25, 1.0])
    assert torch.allclose(score_confidence('vacuity', u, 4), torch.tensor([0.75, 0.0]))
    assert torch.allclose(score_confidence('entropy', u, 4), torch.tensor([0.75, 0.0]))
    es = torch.tensor([-math.log(4), 0.0], dtype=D64)
    assert torch.allclose(score_confidence('ES', es, 4), torch.tensor([0.0, 1.0], dtype=D64), atol=1e-12)
    mp = torch.tensor([0.25, 0.7])
    assert torch.equal(score_confidence('max-prob', mp, 4), mp) and torch.equal(score_confidence('MPS', mp, 4), mp)
    with pytest.raises(ValueError, match="score='nope' is not a score"):
        score_confidence('nope', mp, 4)


def test_check_score_available():
    for kind in OUTPUT_KINDS:
        for s in scores_of(kind):
            check_score_available(s, kind)
    with pytest.raises(ValueError, match=r"uq_score='vacuity' needs an EDL layer .*EDLLayer.*outputs logits"):
        check_score_available('vacuity', 'logits', key='uq_score')
    with pytest.raises(ValueError, match=r"score='MMLES' needs a DisMax / IsoMax\+ layer.*its scores are"):
        check_score_available('MMLES', 'log_alpha', model='the head')
    with pytest.raises(ValueError, match=r"score='MDS'.*the head outputs log_alpha"):
        check_score_available('MDS', 'log_alpha', model='the head')
    with pytest.raises(ValueError, match=r"my_key='softmax' is not a score; the scores are"):
        check_score_available('softmax', 'logits', key='my_key')
    with pytest.raises(ValueError, match=r"score='MSP' is not a score"):
        raw_score('MSP', torch.zeros(2, 3))


def test_check_score_args():
    assert check_score_args('MMLES', None, None, (0.0, 1.0)) == 'confidence'
    assert check_score_args('vacuity', None, 'uncertainty', (0.0, 1.0)) == 'uncertainty'
    # a map field: its direction defaults to uncertainty, the named score is not checked
    assert check_score_args('not-a-score', 'uncertainty_map', None, (0.0, 5.0)) == 'uncertainty'
    assert check_score_args('max-prob', 'conf_map', 'confidence', (-1.0, 1.0)) == 'confidence'
    with pytest.raises(ValueError, match="score='bad' is not a score"):
        check_score_args('bad', None, None, (0.0, 1.0))
    with pytest.raises(ValueError, match="score_is must be 'confidence' or 'uncertainty', got 'up'"):
        check_score_args('MPS', None, 'up', (0.0, 1.0))
    for rng in ((1.0, 0.0), (0.0, 0.0), (0.0, float('inf')), (float('nan'), 1.0), (0.0,), (0.0, 1.0, 2.0)):
        with pytest.raises(ValueError, match='score_range must be two finite numbers lo < hi'):
            check_score_args('MPS', None, None, rng)
