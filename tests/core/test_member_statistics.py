"""MemberStatistics against a float64 computation from the members' stored outputs, written from
the definitions (Depeweg et al. 2018): entropies, mutual information, class variance, disagreement."""
import math

import pytest
import torch

from uqseg.core.accumulators import key_coordinate
from uqseg.core.evidential import vacuity
from uqseg.core.member_statistics import (
    MemberStatistics,
    entropy_nats,
    member_probabilities,
    member_statistics,
    mutual_information,
)
from uqseg.core.scores import (
    MEMBER_SCORES,
    check_member_score,
    check_score_available,
    member_score_confidence,
    member_score_key,
    raw_score,
    score_confidence,
)


def reference(stacked: torch.Tensor, kind: str = 'logits') -> dict:
    """From the stored members (M, N, K, ...), float64, the textbook formulas."""
    z = stacked.double()
    p = z if kind == 'probs' else torch.exp(z.log_softmax(2))
    mean = p.mean(0)

    def h(q):
        return -torch.special.xlogy(q, q).sum(1)

    pe, ee = h(mean), torch.stack([h(q) for q in p]).mean(0)
    pred = mean.argmax(1)
    p_pred = p.gather(2, pred[None, :, None].expand(p.shape[0], -1, 1, *pred.shape[1:])).squeeze(2)
    var = ((p_pred - p_pred.mean(0)) ** 2).mean(0)
    dis = (p.argmax(2) != pred[None]).double().mean(0)
    return dict(mean=mean, pe=pe, ee=ee, mi=pe - ee, var=var, dis=dis)


def check_against(summary, ref, atol=1e-12):
    torch.testing.assert_close(summary.mean, ref['mean'], rtol=0, atol=atol)
    torch.testing.assert_close(summary.predictive_entropy, ref['pe'], rtol=0, atol=atol)
    torch.testing.assert_close(summary.expected_entropy, ref['ee'], rtol=0, atol=atol)
    torch.testing.assert_close(summary.mutual_information, ref['mi'].clamp_min(0), rtol=0, atol=atol)
    torch.testing.assert_close(summary.class_variance, ref['var'], rtol=0, atol=atol)
    torch.testing.assert_close(summary.disagreement, ref['dis'], rtol=0, atol=0)


@pytest.mark.parametrize('shape', [(7, 4, 10), (5, 2, 3, 6, 5), (3, 8, 19, 4, 4)])
def test_statistics_match_stored_members(shape):
    g = torch.Generator().manual_seed(sum(shape))
    z = torch.randn(shape, generator=g) * 3
    check_against(member_statistics(z), reference(z))


def test_probability_members_and_the_plain_function():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(6, 3, 5, 4, 4, generator=g).softmax(2)  # (M, N, K, H, W) probabilities
    mi = mutual_information(p)
    assert mi.shape == (3, 4, 4) and mi.dtype == torch.float64
    torch.testing.assert_close(mi, reference(p, 'probs')['mi'].clamp_min(0), rtol=0, atol=1e-12)


def test_mutual_information_non_negative_and_zero_when_members_agree():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(9, 50, 6, generator=g) * torch.logspace(-3, 2, 9)[:, None, None]
    assert bool((member_statistics(z).mutual_information >= 0).all())
    same = torch.randn(1, 40, 7, generator=g).mul(30).expand(5, -1, -1)  # incl. near-certain rows
    s = member_statistics(same)
    assert torch.equal(s.mutual_information, torch.zeros(40, dtype=torch.float64))
    assert torch.equal(s.class_variance, torch.zeros(40, dtype=torch.float64))
    assert torch.equal(s.disagreement, torch.zeros(40, dtype=torch.float64))
    assert torch.equal(s.mean, member_probabilities(same[0]))


def test_one_member_is_the_model_itself():
    z = torch.randn(4, 5, 3, 3)
    s = MemberStatistics().update(z).compute()
    assert torch.equal(s.mean, z.double().softmax(1))
    assert torch.equal(s.predictive_entropy, s.expected_entropy)
    assert not bool(s.mutual_information.any()) and not bool(s.disagreement.any())
    torch.testing.assert_close(MemberStatistics().update(z).mean_logits().softmax(1), z.softmax(1))


def test_merge_of_two_partial_ensembles_equals_the_whole():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(8, 6, 5, 7, generator=g) * 4
    whole = member_statistics(z)
    a, b = MemberStatistics(), MemberStatistics()
    for m in range(3):
        a.update(z[m])
    for m in range(3, 8):
        b.update(z[m])
    merged = (a + b).compute()
    assert merged.members == 8 and a.count == 3  # + leaves the operands
    for field in ('mean', 'predictive_entropy', 'expected_entropy', 'mutual_information', 'class_variance'):
        torch.testing.assert_close(getattr(merged, field), getattr(whole, field), rtol=0, atol=1e-13)
    assert torch.equal(merged.disagreement, whole.disagreement)  # integer votes: exact
    empty = MemberStatistics()
    assert empty.merge(a).count == 3 and torch.equal(empty.mean(), a.mean())


def test_member_order_does_not_matter():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 10, 4, generator=g) * 2
    s1, s2 = member_statistics(z), member_statistics(z[torch.randperm(6, generator=g)])
    torch.testing.assert_close(s1.mutual_information, s2.mutual_information, rtol=0, atol=1e-13)
    assert torch.equal(s1.disagreement, s2.disagreement)


def test_near_certain_members_keep_their_entropy():
    # two classes, logit gaps g: H = log1p(e^-g) + g e^-g / (1 + e^-g) exactly; 1 - p_top rounds away for g > 37
    gaps = torch.tensor([5.0, 30.0, 45.0, 80.0, 300.0], dtype=torch.float64)
    z = torch.stack([gaps, torch.zeros_like(gaps)], 1)
    want = torch.tensor([math.log1p(math.exp(-g)) + g * math.exp(-g) / (1 + math.exp(-g)) for g in gaps.tolist()],
                        dtype=torch.float64)
    got = entropy_nats(member_probabilities(z))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    # members at gaps 40 and 60: the MI is tiny but positive and exact to float64's relative precision
    two = torch.tensor([[[40.0, 0.0]], [[60.0, 0.0]]], dtype=torch.float64)
    e1, e2 = math.exp(-40), math.exp(-60)
    p1 = [1 / (1 + e1), e1 / (1 + e1)]
    p2 = [1 / (1 + e2), e2 / (1 + e2)]
    m = [(a + b) / 2 for a, b in zip(p1, p2)]

    def h(q, gap):  # -q0 log q0 - q1 log q1 with log q0 = -log1p(q1 / q0) in closed form
        return q[1] * math.log1p(q[0] / q[1]) + q[0] * math.log1p(q[1] / q[0])
    want_mi = h(m, None) - (h(p1, None) + h(p2, None)) / 2
    got_mi = member_statistics(two).mutual_information.item()
    assert want_mi > 0 and got_mi == pytest.approx(want_mi, rel=1e-6)


def test_edl_and_distance_members_average_their_layer_scores():
    g = torch.Generator().manual_seed(5)
    la = torch.randn(4, 6, 3, generator=g)
    s = member_statistics(la, 'log_alpha')
    torch.testing.assert_close(s.layer_scores['vacuity'], torch.stack([vacuity(x.double(), 1) for x in la]).mean(0))
    torch.testing.assert_close(s.mean, (la.double().exp() / la.double().exp().sum(2, keepdim=True)).mean(0))
    d = -torch.rand(3, 5, 4, generator=g) * 5
    s = member_statistics(d, 'distance_logits')
    assert set(s.layer_scores) == {'MDS', 'MMLS', 'MMLES'}
    torch.testing.assert_close(s.layer_scores['MMLES'],
                               torch.stack([raw_score('MMLES', x, 1, 'distance_logits') for x in d]).mean(0))
    mixed = MemberStatistics().update(la[0], 'log_alpha').update(torch.randn(6, 3), 'logits')
    summary = mixed.compute()
    assert summary.layer_scores == {} and summary.kinds == ('log_alpha', 'logits')
    with pytest.raises(ValueError, match=r"'vacuity' .*members of my ensemble output log_alpha x1, logits x1"):
        check_member_score('vacuity', tuple(summary.maps()), summary.kinds, 'my ensemble')
    check_member_score('vacuity', tuple(member_statistics(la, 'log_alpha').maps()), ('log_alpha',) * 4, 'edl')


def test_bad_members_are_named():
    s = MemberStatistics().update(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r'member 1: .*5 classes.*4 classes'):
        s.update(torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match=r'deeplab: .*2 classes'):
        s.update(torch.randn(2, 4, 3, 3), source='deeplab').update(torch.randn(2, 2, 3, 3), source='deeplab')
    with pytest.raises(ValueError, match='at least 2 classes'):
        MemberStatistics().update(torch.rand(2, 1, 3, 3), 'probs')
    with pytest.raises(ValueError, match='no members'):
        MemberStatistics().compute()
    with pytest.raises(ValueError, match='non-finite'):
        MemberStatistics().update(torch.tensor([[0.0, float('nan')]]))


def test_member_scores_by_name():
    assert MEMBER_SCORES == ('mutual-information', 'expected-entropy', 'class-variance', 'disagreement')
    with pytest.raises(ValueError, match="'mutual-information' needs several members.*the model is one model"):
        check_score_available('mutual-information', 'logits')
    with pytest.raises(ValueError, match='needs several members'):
        raw_score('mutual-information', torch.randn(3, 4))
    with pytest.raises(ValueError, match='needs several members'):
        check_member_score('disagreement', (), (), 'FCN')
    check_member_score('max-prob', (), (), 'FCN')  # functions of p always exist
    mi = torch.tensor([0.0, 0.5, math.log(4)], dtype=torch.float64)
    conf = member_score_confidence('mutual-information', mi, 4)
    assert torch.equal(conf, score_confidence('mutual-information', mi, 4))
    assert conf.tolist() == pytest.approx([1.0, 1 - 0.5 / math.log(4), 0.0])
    assert member_score_confidence('class-variance', torch.tensor([0.0, 0.25]), 3).tolist() == [1.0, 0.0]
    # keys: higher = more confident, the order of the confidence
    assert member_score_key('disagreement', torch.tensor([0.0, 0.4], dtype=torch.float64)).tolist() == \
        [math.inf, -math.log(0.4)]
    assert member_score_key('MDS', torch.tensor([-1.0, -3.0])).tolist() == [-1.0, -3.0]
    assert member_score_key('vacuity', torch.tensor([0.1, 0.9], dtype=torch.float64)).tolist() == \
        [-math.log(0.1), -math.log(0.9)]


def test_tiny_mutual_information_is_resolved_by_the_histogram_key():
    # members that nearly agree: MI of 1e-7 .. 1e-4 nats; on the histogram's key coordinate (10,000 bins)
    # the keys of values a factor 1.1 apart fall in different bins, so a ranking metric can tell them apart
    x = torch.logspace(-7, -4, 30, dtype=torch.float64)
    bins = (key_coordinate(member_score_key('mutual-information', x)) * 10000).floor()
    assert len(set(bins.tolist())) == 30
    assert bool((member_score_key('mutual-information', x).diff() < 0).all())  # higher MI, lower key


def test_ties_go_to_the_first_class_as_argmax():
    # members tied between classes 1 and 2 (and a mean tied the same way): the first of tied maxima everywhere
    probs = torch.tensor([[[0.2, 0.4, 0.4]], [[0.0, 0.5, 0.5]], [[0.1, 0.45, 0.45]]], dtype=torch.float64)
    s = member_statistics(probs, 'probs')
    assert s.disagreement.item() == 0.0  # every member's top is class 1, the mean's too
    assert s.class_variance.item() == pytest.approx(((0.4 - 0.45) ** 2 + (0.5 - 0.45) ** 2) / 3)
    ref = reference(probs, 'probs')
    assert s.disagreement.item() == ref['dis'].item() and s.mean.argmax(1).item() == 1
