"""uqseg.core.accumulators: merge == one pass, states round-trip through from_state, and the
histogram's error bounds."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uqseg.core import functional as F
from uqseg.core.accumulators import (
    KEY_MAX,
    CalibrationAccumulator,
    ConfidenceHistogram,
    ScoreSumAccumulator,
    key_coordinate,
)
from uqseg.core.binning import bin_index

_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random(n, seed, ties=None):
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(n, generator=g, dtype=torch.float64)
    if ties:
        conf = (torch.floor(conf * ties) + 0.5) / ties
    correct = torch.rand(n, generator=g, dtype=torch.float64) < conf
    return conf, correct


def _exact(conf, correct):
    return dict(AURC=F.aurc(conf, correct), EAURC=F.eaurc(conf, correct),
                AUROC=F.auroc(conf, correct), AUPR=F.aupr(conf, correct),
                **{'FPR@95TPR': F.fpr_at_tpr(conf, correct, 0.95)})


def _close(a: dict, b: dict, tol=1e-12):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.allclose(a[k], b[k], atol=tol, rtol=0, equal_nan=True), k
        elif math.isnan(a[k]):
            assert math.isnan(b[k]), k
        else:
            assert a[k] == pytest.approx(b[k], abs=tol), k


# --------------------------------------------------------------------------- calibration
def test_calibration_accumulator_matches_functional_and_reliability():
    conf = torch.tensor([.99, .95, .91, .87, .83, .71, .62, .55, .43, .34], dtype=torch.float64)
    correct = torch.tensor([1, 0, 1, 1, 1, 0, 1, 0, 0, 1])
    acc = CalibrationAccumulator(10)
    assert math.isnan(acc.compute()['ECE'])
    acc.update(conf[:4], correct[:4])
    acc.update(conf[4:], correct[4:])
    out = acc.compute()
    assert out['ECE'] == pytest.approx(0.388, abs=1e-12)  # spec oracle
    assert out['MCE'] == pytest.approx(F.calibration_error(conf, correct, 10, 'max'), abs=1e-15)
    assert out['RMSCE'] == pytest.approx(F.calibration_error(conf, correct, 10, 'l2'), abs=1e-15)
    assert out['OE'] == pytest.approx(F.overconfidence_error(conf, correct, 10), abs=1e-15)
    rel = acc.reliability()
    # bins (by hand): 3 -> .34 (1); 4 -> .43 (0); 5 -> .55 (0); 6 -> .62 (1); 7 -> .71 (0);
    # 8 -> .83, .87 (1, 1); 9 -> .91, .95, .99 (1, 0, 1)
    assert rel['count'].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 2, 3]
    assert rel['acc'][3:].tolist() == pytest.approx([1, 0, 0, 1, 0, 1, 2 / 3])
    assert rel['conf'][8:].tolist() == pytest.approx([0.85, 0.95])
    assert torch.isnan(rel['acc'][:3]).all() and torch.isnan(rel['conf'][:3]).all()
    assert rel['lower'][3].item() == pytest.approx(0.3) and rel['upper'][9].item() == 1.0


def test_score_sum_accumulator_matches_functional():
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64).softmax(1)
    t = torch.randint(0, 4, (3, 5, 6), generator=g)
    acc = ScoreSumAccumulator()
    assert math.isnan(acc.compute()['NLL'])
    for i in range(3):
        acc.update(probs[i:i + 1], t[i:i + 1])
    out = acc.compute()
    assert out['NLL'] == pytest.approx(F.nll(probs, t), abs=1e-13)
    assert out['Brier'] == pytest.approx(F.brier_score(probs, t), abs=1e-13)


def test_merge_needs_the_same_kind_and_bins_and_add_copies():
    a, b = CalibrationAccumulator(10), CalibrationAccumulator(15)
    with pytest.raises(ValueError, match='cannot merge'):
        a.merge(b)
    with pytest.raises(ValueError, match='cannot merge'):
        _ = ConfidenceHistogram(10) + CalibrationAccumulator(10)
    # __add__ leaves its operands alone; merge is in place
    conf, correct = _random(50, seed=1)
    a, b = ConfidenceHistogram(100), ConfidenceHistogram(100)
    a.update(conf[:20], correct[:20])
    b.update(conf[20:], correct[20:])
    before = a.state.clone()
    c = a + b
    assert torch.equal(a.state, before) and torch.equal(c.state, before + b.state)
    a.merge(b)
    assert torch.equal(a.state, c.state)
    a.reset()
    assert a.state.sum() == 0


def test_state_sum_is_what_all_reduce_needs():
    # simulate 3 ranks: summing the state tensors (what all_reduce SUM does) == one pass
    conf, correct = _random(900, seed=2)
    g = torch.Generator().manual_seed(2)
    probs = torch.randn(900, 3, generator=g, dtype=torch.float64).softmax(1)
    t = torch.randint(0, 3, (900,), generator=g)
    kinds = [lambda: CalibrationAccumulator(15), lambda: ConfidenceHistogram(1000)]
    for make in kinds:
        ranks = [make() for _ in range(3)]
        for r, acc in enumerate(ranks):
            acc.update(conf[r::3], correct[r::3])
        total = torch.stack([a.state for a in ranks]).sum(0)
        ranks[0].state.copy_(total)
        one = make()
        one.update(conf, correct)
        _close(ranks[0].compute(), one.compute())
    ranks = [ScoreSumAccumulator() for _ in range(3)]
    for r, acc in enumerate(ranks):
        acc.update(probs[r::3], t[r::3])
    ranks[0].state.copy_(sum(a.state for a in ranks))
    _close(ranks[0].compute(), {'NLL': F.nll(probs, t), 'Brier': F.brier_score(probs, t), 'NLL-clamped': 0})


@_SETTINGS
@given(st.integers(1, 300), st.lists(st.integers(0, 300), max_size=5), st.integers(0, 10_000),
       st.sampled_from([None, 3, 20]))
def test_batched_accumulation_equals_one_pass(n, cuts, seed, ties):
    conf, correct = _random(n, seed, ties)
    g = torch.Generator().manual_seed(seed)
    probs = torch.randn(n, 3, generator=g, dtype=torch.float64).softmax(1)
    t = torch.randint(0, 3, (n,), generator=g)
    bounds = [0] + sorted(min(c, n) for c in cuts) + [n]
    makers = [lambda: CalibrationAccumulator(15), lambda: ConfidenceHistogram(64)]
    for make in makers:
        parts = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            acc = make()
            acc.update(conf[lo:hi], correct[lo:hi])  # empty batches are fine
            parts.append(acc)
        merged = parts[0]
        for p in parts[1:]:
            merged = merged + p
        one = make()
        one.update(conf, correct)
        _close(merged.compute(), one.compute())
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        acc = ScoreSumAccumulator()
        acc.update(probs[lo:hi], t[lo:hi])
        parts.append(acc)
    merged = sum(parts[1:], parts[0])
    _close(merged.compute(), {'NLL': F.nll(probs, t), 'Brier': F.brier_score(probs, t), 'NLL-clamped': 0})
    # and the pooled calibration equals the functional value on all the data
    cal = CalibrationAccumulator(15)
    cal.update(conf, correct)
    assert cal.compute()['ECE'] == pytest.approx(F.calibration_error(conf, correct, 15), abs=1e-12)


# ----------------------------------------------------------------------------- histogram
def test_histogram_is_exact_when_each_bin_holds_one_confidence():
    # confidences on bin centres (ties included): every histogram bin is one exact tie group
    n_bins = 50
    conf, correct = _random(3000, seed=3, ties=n_bins)
    h = ConfidenceHistogram(n_bins)
    h.update(conf, correct)
    _close(h.compute(), _exact(conf, correct), tol=1e-12)


def test_histogram_is_nan_when_empty_and_for_a_single_class():
    h = ConfidenceHistogram(100)
    assert all(math.isnan(v) for v in h.compute().values())
    h.update(torch.tensor([0.2, 0.7]), torch.tensor([1, 1]))
    out = h.compute()
    assert out['AURC'] == 0 and out['EAURC'] == 0
    assert math.isnan(out['AUROC']) and math.isnan(out['AUPR']) and math.isnan(out['FPR@95TPR'])


@pytest.mark.parametrize('n_bins', [7, 100, 10000])
def test_histogram_within_documented_bounds(n_bins):
    conf, correct = _random(4000, seed=n_bins)
    h = ConfidenceHistogram(n_bins)
    h.update(conf, correct)
    out, b, exact = h.compute(), h.bounds(), _exact(conf, correct)
    for k in ('AURC', 'EAURC', 'AUROC'):
        lo, hi = b[k]
        assert lo - 1e-12 <= exact[k] <= hi + 1e-12, k
        assert lo - 1e-12 <= out[k] <= hi + 1e-12, k
    assert abs(out['AUROC'] - exact['AUROC']) <= b['AUROC_apriori'][1] + 1e-12
    assert abs(out['AURC'] - exact['AURC']) <= b['AURC_apriori'][1] + 1e-12
    assert abs(out['EAURC'] - exact['EAURC']) <= b['AURC_apriori'][1] + 1e-12
    # AUROC bound = half the fraction of (correct, incorrect) pairs sharing a bin (by brute force)
    idx = torch.clamp(torch.ceil(conf * n_bins) - 1, min=0).long()
    ok, bad = idx[correct], idx[~correct]
    same = (ok[:, None] == bad[None, :]).double().mean().item()
    assert b['AUROC_apriori'][1] == pytest.approx(0.5 * same, abs=1e-12)
    if n_bins == 10000:  # a fine histogram is close in practice
        assert abs(out['AURC'] - exact['AURC']) < 1e-4 and abs(out['AUROC'] - exact['AUROC']) < 1e-4


def test_histogram_bounds_are_attained_by_extreme_orders():
    # one bin: the exact AURC of "correct first" / "errors first" confidences inside it are the
    # interval's ends (tightness), and AUROC moves by exactly the bound.
    h = ConfidenceHistogram(1)
    correct = torch.tensor([1, 1, 0, 1, 0])
    h.update(torch.full((5,), 0.5), correct)
    b = h.bounds()
    good = torch.tensor([0.9, 0.8, 0.2, 0.7, 0.1], dtype=torch.float64)  # correct ranked first
    bad = 1 - good
    assert b['AURC'][0] == pytest.approx(F.aurc(good, correct), abs=1e-12)
    assert b['AURC'][1] == pytest.approx(F.aurc(bad, correct), abs=1e-12)
    assert b['AUROC'] == pytest.approx((F.auroc(bad, correct), F.auroc(good, correct)), abs=1e-12)


@_SETTINGS
@given(st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.booleans()), min_size=1, max_size=80),
       st.integers(1, 40))
def test_histogram_bounds_property(data, n_bins):
    conf = torch.tensor([c for c, _ in data], dtype=torch.float64)
    correct = torch.tensor([y for _, y in data])
    h = ConfidenceHistogram(n_bins)
    h.update(conf, correct)
    out, b, exact = h.compute(), h.bounds(), _exact(conf, correct)
    for k in ('AURC', 'EAURC', 'AUROC'):
        if math.isnan(exact[k]):
            assert math.isnan(out[k])
            continue
        lo, hi = b[k]
        assert lo - 1e-12 <= exact[k] <= hi + 1e-12 and lo - 1e-12 <= out[k] <= hi + 1e-12, k
    assert abs(out['AURC'] - exact['AURC']) <= b['AURC_apriori'][1] + 1e-12
    # the a-priori bound covers the extreme in-bin orders too
    lo, hi = b['AURC']
    assert max(hi - out['AURC'], out['AURC'] - lo) <= b['AURC_apriori'][1] + 1e-12
    if not math.isnan(exact['AUROC']):
        assert abs(out['AUROC'] - exact['AUROC']) <= b['AUROC_apriori'][1] + 1e-12


def test_histogram_keeps_its_precision_at_a_billion_pixels():
    # (the closed form of the optimal AURC for large counts: tests/core/test_ranking.py)
    # a histogram with ~1e9 pixels keeps its precision: scale the counts of a small one
    conf, correct = _random(2000, seed=4, ties=20)
    h = ConfidenceHistogram(20)
    h.update(conf, correct)
    # N = 1e6 (asymptotic harmonic branch, s >= 1000): equals the exact functional value
    mid = h.copy()
    mid.state *= 500
    exact = F.aurc(conf.repeat(500), correct.repeat(500))
    assert mid.compute()['AURC'] == pytest.approx(exact, abs=1e-12)
    big = h.copy()
    big.state *= 500_000  # 1e9 pixels; in-bin ties in expectation barely depend on the scale
    for key in ('AUROC', 'AUPR', 'FPR@95TPR'):  # scale-invariant exactly
        assert big.compute()[key] == pytest.approx(h.compute()[key], abs=1e-12)
    # AURC of m copies of each sample differs from the original by O(log N / N) only
    assert big.compute()['AURC'] == pytest.approx(h.compute()['AURC'], abs=1e-2)
    lo, hi = big.bounds()['AURC']
    assert lo <= big.compute()['AURC'] <= hi


# ----------------------------------------------------------------------------- ranking keys
def test_key_coordinate_is_monotone_onto_the_unit_interval():
    k = torch.cat([torch.tensor([-math.inf, -1e300, -2 * KEY_MAX, -KEY_MAX, 0.0, KEY_MAX, 2 * KEY_MAX, math.inf],
                                dtype=torch.float64),
                   torch.linspace(-KEY_MAX, KEY_MAX, 100_001, dtype=torch.float64),
                   torch.logspace(-12, 4, 10_001, dtype=torch.float64)]).sort().values
    x = key_coordinate(k)
    assert x.dtype == torch.float64 and bool((x[1:] >= x[:-1]).all())
    assert x[0] == 0 and x[-1] == 1 and key_coordinate(torch.zeros(1)).item() == 0.5
    # its definition, written from asinh in float64 (math), and odd around 1/2
    for v in (-3e3, -20.0, -1.0, 1e-3, 2.5, 150.0):
        assert key_coordinate(torch.tensor([v], dtype=torch.float64)).item() == pytest.approx(
            0.5 + math.asinh(v) / (2 * math.asinh(KEY_MAX)), abs=1e-15)
    assert key_coordinate(torch.tensor([KEY_MAX], dtype=torch.float64)).item() == pytest.approx(1.0, abs=1e-15)
    # the resolution the docs claim with 10,000 bins: logit gaps 20 / 20.1, 200 / 201 in different bins
    for a, b in ((20.0, 20.1), (200.0, 201.0), (0.0, 0.003)):
        ia, ib = bin_index(key_coordinate(torch.tensor([a, b], dtype=torch.float64)), 10_000).tolist()
        assert ia < ib, (a, b)


def _dense_rank(key):
    """A [0, 1] confidence with the order and ties of ``key`` (its dense rank), for the exact metrics."""
    uniq, inv = torch.unique(key, return_inverse=True)
    return inv.double() / max(len(uniq) - 1, 1)


@pytest.mark.parametrize('n_bins', [100, 10000])
def test_key_histogram_within_bounds_of_the_exact_values_of_the_keys(n_bins):
    # keys of near-certain predictions (20..200) and moderate ones, errors among the most confident
    g = torch.Generator().manual_seed(11)
    key = torch.cat([20 + 180 * torch.rand(3000, generator=g, dtype=torch.float64),
                     torch.randn(1000, generator=g, dtype=torch.float64) * 3, torch.tensor([-math.inf, math.inf])])
    correct = torch.rand(len(key), generator=g) < 0.55 + 0.4 * torch.tanh((key.clamp(-1e3, 1e3) - 60) / 60)
    h = ConfidenceHistogram(n_bins, coordinate='key')
    h.update(key[:1000], correct[:1000])
    h.update(key[1000:], correct[1000:])
    out, b, exact = h.compute(), h.bounds(), _exact(_dense_rank(key), correct)
    for k in ('AURC', 'EAURC', 'AUROC'):
        lo, hi = b[k]
        assert lo - 1e-12 <= exact[k] <= hi + 1e-12, k
        assert lo - 1e-12 <= out[k] <= hi + 1e-12, k
    if n_bins == 10000:  # the keys of the near-certain pixels are resolved
        assert b['AUROC'][1] - b['AUROC'][0] < 2e-3 and b['AURC'][1] - b['AURC'][0] < 5e-3
        assert abs(exact['AUROC'] - 0.5) > 0.1  # the keys do rank the errors
    # a [0, 1] confidence of the same pixels (sigmoid of the key) ties them all in the top bin
    conf = ConfidenceHistogram(n_bins)
    conf.update(torch.sigmoid(key), correct)
    assert conf.bounds()['AUROC'][1] - conf.bounds()['AUROC'][0] > 0.3


def test_key_histograms_do_not_merge_with_confidence_ones_and_refuse_nan():
    a, b = ConfidenceHistogram(10, coordinate='key'), ConfidenceHistogram(10)
    with pytest.raises(ValueError, match='cannot merge'):
        a.merge(b)
    a.merge(ConfidenceHistogram.from_state(torch.ones(2, 10), n_bins=10, coordinate='key'))
    assert a.state.sum() == 20
    with pytest.raises(ValueError, match='must not be NaN'):
        a.update(torch.tensor([1.0, math.nan]), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="coordinate must be one of \\('confidence', 'key'\\), got 'logit'"):
        ConfidenceHistogram(10, coordinate='logit')
    # keys outside [0, 1] are fine, a confidence histogram refuses them
    a.update(torch.tensor([-5.0, 300.0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        b.update(torch.tensor([-5.0, 300.0]), torch.tensor([0, 1]))


# ----------------------------------------------------------------------------- state, masks
def test_from_state_builds_an_accumulator_holding_the_state():
    g = torch.Generator().manual_seed(5)
    cases = [torch.zeros(2, 50), torch.stack([torch.rand(50, generator=g), torch.zeros(50)]).round()]
    cases += [torch.randint(0, 4, (2, 200), generator=g).double() for _ in range(5)]
    for state in cases:
        h = ConfidenceHistogram(state.shape[1])
        h.state = state.double()
        got_h = ConfidenceHistogram.from_state(state, n_bins=state.shape[1])
        assert got_h.state is not state and got_h.state.dtype == torch.float64
        for tpr in (0.95, 0.8):
            ref, got = h.compute(tpr), got_h.compute(tpr)
            assert ref.keys() == got.keys()
            _close(got, ref)
    conf, correct = _random(300, seed=6)
    cal = CalibrationAccumulator(12)
    cal.update(conf, correct)
    _close(CalibrationAccumulator.from_state(cal.state, n_bins=12).compute(), cal.compute())
    scores = ScoreSumAccumulator(eps=1e-6)
    scores.update(conf, correct.long())
    again = ScoreSumAccumulator.from_state(scores.state, eps=1e-6)
    assert again.eps == 1e-6
    _close(again.compute(), scores.compute())
    with pytest.raises(ValueError, match=r'state must have shape \(3, 10\), got \(3, 12\)'):
        CalibrationAccumulator.from_state(cal.state, n_bins=10)


def test_update_with_a_valid_mask_equals_update_with_the_selected_values():
    g = torch.Generator().manual_seed(7)
    conf = torch.rand(6, 9, generator=g, dtype=torch.float64)
    correct = torch.rand(6, 9, generator=g, dtype=torch.float64) < conf
    valid = torch.rand(6, 9, generator=g) < 0.7
    probs = torch.randn(6, 3, 9, generator=g, dtype=torch.float64).softmax(1)
    target = torch.randint(0, 3, (6, 9), generator=g)
    for make in (lambda: CalibrationAccumulator(15), lambda: ConfidenceHistogram(64)):
        ref, masked, unchecked = make(), make(), make()
        ref.update(conf[valid], correct[valid])
        masked.update(conf, correct, valid)
        unchecked.update(conf, correct, valid, validate=False)
        assert torch.equal(masked.state, ref.state) and torch.equal(unchecked.state, ref.state)
    ref, masked = ScoreSumAccumulator(), ScoreSumAccumulator()
    ref.update(probs.permute(0, 2, 1)[valid], target[valid])
    masked.update(probs, target.masked_fill(~valid, 99), valid)  # anything where not valid
    assert torch.allclose(masked.state, ref.state, rtol=1e-13, atol=0)
    # validation still applies to the selected values
    with pytest.raises(ValueError, match=r'conf must lie in \[0, 1\]'):
        CalibrationAccumulator(10).update(conf + 1, correct, valid)


def test_compute_batched_gives_each_state_its_own_errors():
    states, refs = [], []
    for seed in range(4):
        conf, correct = _random(80 + seed, seed=seed)
        acc = CalibrationAccumulator(10)
        acc.update(conf, correct)
        states.append(acc.state)
        refs.append(acc.compute())
    states.append(torch.zeros(3, 10, dtype=torch.float64))
    refs.append(CalibrationAccumulator(10).compute())
    got = CalibrationAccumulator.compute_batched(torch.stack(states))
    for i, ref in enumerate(refs):
        _close({k: float(v[i]) for k, v in got.items()}, ref, tol=1e-15)


def test_risk_coverage_of_the_histogram_is_the_functional_curve_at_bin_ends():
    # confidences on bin centres: each bin one tie group, so the curve at the bins' ends is exact
    conf, correct = _random(500, seed=8, ties=20)
    h = ConfidenceHistogram(20)
    h.update(conf, correct)
    rc = h.risk_coverage()
    assert all(isinstance(rc[k], torch.Tensor) for k in ('coverage', 'risk', 'coverage_opt', 'risk_opt'))
    cov, risk = F.risk_coverage_curve(conf, correct)
    counts = torch.unique(conf, return_counts=True)[1].flip(0)  # tie-group sizes, highest confidence first
    ends = counts.cumsum(0) - 1
    assert rc['coverage'][0] == 0 and rc['coverage'][-1] == pytest.approx(1.0)
    assert rc['coverage'][1:].tolist() == pytest.approx(cov[ends].tolist(), abs=1e-12)
    assert rc['risk'][1:].tolist() == pytest.approx(risk[ends].tolist(), abs=1e-12)
    assert rc['error_rate'] == pytest.approx(1 - float(correct.double().mean()), abs=1e-12)
    # the perfect ordering: no risk until every correct sample is accepted
    n_ok = int(correct.sum())
    k = rc['coverage_opt'] * 500
    assert (rc['risk_opt'][k <= n_ok + 1e-9] == 0).all()
    assert rc['risk_opt'][-1].item() == pytest.approx(rc['error_rate'])
    empty = ConfidenceHistogram(20).risk_coverage()
    assert empty['coverage'].numel() == 0 and math.isnan(empty['error_rate'])


def test_hard_calibration_update_refuses_soft_correctness():
    acc = CalibrationAccumulator(10)
    with pytest.raises(ValueError, match='correct must be bool or 0/1'):
        acc.update(torch.tensor([0.7, 0.8]), torch.tensor([0.5, 1.0]), hard=True)
    acc.update(torch.tensor([0.7, 0.8]), torch.tensor([0.5, 1.0]))  # soft: inferred, accepted
    assert float(acc.state[2].sum()) == 1.5
