"""Property tests (hypothesis): the selective-prediction report against an exact reference.

The reference is written here from the definitions, in mpmath at 1,000 significant digits (enough
for logit differences of 2,000: ``exp(-2000) ~ 1e-869``), on each row's values sorted (so rows that are
permutations of each other give the same numbers, as they must): ``p = softmax(z)``,
``max-prob = p_(1)``, ``margin = p_(1) - p_(2)``, ``entropy = 1 - H(p) / log K``; the ranking
metrics are computed from those exact confidences by brute force with exact fractions (ties in
expectation for AURC / coverage, counted 1/2 for AUROC). Inputs: logits with gaps up to 1,000 in
float16 / float32 / float64, permuted duplicate rows (exact ties), near ties (the top logit moved
by a few ulps), one class, all correct, all wrong.
"""
import math

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.helpers.exact import exact_cov_at_acc, exact_ranking, exact_row, model_outputs, resolvable
from uqseg.core import functional as F
from uqseg.core.confidence_keys import confidence_key, fixed_sum
from uqseg.core.selective import confidence_keys, selective_report

pytestmark = pytest.mark.usefixtures('one_thread')


SETTINGS = dict(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(**SETTINGS)
@given(model_outputs())
def test_report_equals_the_exact_reference(data):
    z, labels = data
    n, k = z.shape
    rows = [exact_row(z[i].tolist(), int(labels[i])) for i in range(n)]
    correct = (z.to(torch.float64).argmax(1) == labels).long().tolist()
    assume(all(resolvable(rows, name) for name in ('max-prob', 'margin', 'entropy')))
    rep = selective_report(z, labels, coverages=(0.5,), accuracy_targets=(0.9,))
    assert rep['accuracy'] == pytest.approx(sum(correct) / n, abs=1e-15)
    # NLL / Brier: float32 arithmetic for float32 / float16 logits (fast_softmax_rows), float64 for float64
    rel = 1e-12 if z.dtype == torch.float64 else 2e-6
    assert rep['NLL'] == pytest.approx(float(sum(r['nll'] for r in rows) / n), rel=rel, abs=1e-300)
    assert rep['Brier'] == pytest.approx(float(sum(r['brier'] for r in rows) / n), rel=rel, abs=1e-12)
    for name in ('max-prob', 'margin', 'entropy'):
        ref = exact_ranking([r[name] for r in rows], correct)
        assert rep[f'AURC[{name}]'] == pytest.approx(ref['AURC'], abs=1e-12), name
        if math.isnan(ref['AUROC']):
            assert math.isnan(rep[f'AUROC[{name}]'])
        else:
            assert rep[f'AUROC[{name}]'] == pytest.approx(ref['AUROC'], abs=1e-12), name
        assert rep[f'cov@acc0.9[{name}]'] == pytest.approx(exact_cov_at_acc(ref['risks'], 0.9), abs=1e-12), name


@settings(**SETTINGS)
@given(model_outputs())
def test_keys_order_and_ties_are_the_exact_confidences(data):
    """Every pair of rows is ordered by its key as by the exact confidence wherever float64 keys
    can resolve them (:func:`resolvable`), and ties exactly where the exact confidences tie (so
    permuted rows tie, and near-certain rows do not); the keys match the exact ones."""
    z, labels = data
    rows = [exact_row(z[i].tolist(), 0) for i in range(z.shape[0])]
    keys = confidence_keys(z)
    for name in ('max-prob', 'margin', 'entropy'):
        key = keys[name].tolist()
        ref = [r[name] for r in rows]
        for i in range(len(ref)):
            # float64 logits: exact keys; float32 / float16: within the documented bound of the float32 pass
            # (rows close to another are made exact, the others only need their order)
            span = float(z[i].double().max() - z[i].double().min())
            bound = 1e-12 if z.dtype == torch.float64 else 4 * (2 ** -23 + 2 ** -24 * span) + z.shape[1] * 2 ** -50
            want = float(rows[i]['key'][name])
            assert key[i] == want or abs(key[i] - want) <= bound * max(1, abs(want)), (name, z[i].tolist())
            for j in range(i):
                exact = (ref[i] > ref[j]) - (ref[i] < ref[j])
                got = (key[i] > key[j]) - (key[i] < key[j])
                if exact == 0 or resolvable([rows[i], rows[j]], name):
                    assert got == exact, (name, i, j, z[i].tolist(), z[j].tolist())


@settings(**SETTINGS)
@given(model_outputs(), st.integers(0, 2 ** 16))
def test_report_is_invariant_to_row_and_column_permutations(data, seed):
    z, labels = data
    n, k = z.shape
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(n, generator=g)
    cols = torch.randperm(k, generator=g)
    inv = torch.argsort(cols)
    a = selective_report(z, labels)
    b = selective_report(z[rows][:, cols], inv[labels[rows]])
    ties = (z.to(torch.float64).max(1, keepdim=True).values == z.to(torch.float64)).sum(1) > 1
    assume(not bool(ties.any()))  # the prediction of a tied top (the first maximum) depends on the column order
    for key, value in a.items():
        assert b[key] == pytest.approx(value, rel=1e-12, abs=1e-12, nan_ok=True), key


def test_near_certain_model_is_ranked_exactly():
    """Item 1 of issue 19: 5,000 rows of 10 classes, logit gaps 30-80, many wrong among the most
    confident. Float64 max-prob ties at 1.0 for every gap above ~37; the keys do not."""
    g = torch.Generator().manual_seed(0)
    n, k = 5000, 10
    gap = 30 + 50 * torch.rand(n, generator=g, dtype=torch.float64)
    z = torch.randn(n, k, generator=g, dtype=torch.float64)
    z[:, 0] += gap
    z = z.float()
    labels = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < 0.6 * (80 - gap) / 50, 1, 0)
    assert int((1 / torch.exp(z.double() - z.double().max(1, keepdim=True).values).sum(1) == 1).sum()) > 1000
    key = confidence_key('max-prob', z)
    correct = (z.argmax(1) == labels)
    # reference: -log r in float64 log space from the sorted row (logsumexp of the non-top logits)
    zs = z.double().sort(1, descending=True).values
    ref_key = -torch.logsumexp(zs[:, 1:] - zs[:, :1], 1)
    assert torch.allclose(key, ref_key, rtol=1e-12, atol=0)
    ref_auroc = F.auroc(torch.argsort(torch.argsort(ref_key)).double() / n, correct)
    rep = selective_report(z, labels)
    assert rep['AUROC[max-prob]'] == pytest.approx(ref_auroc, abs=1e-12)
    tied = F.auroc(torch.sigmoid(-torch.logsumexp(zs[:, 1:] - zs[:, :1], 1)), correct)
    assert abs(tied - ref_auroc) > 0.01  # the saturated confidence would have ranked them wrongly


def test_nll_is_exact_for_extreme_logits_and_clamp_is_reported_for_probabilities():
    z = torch.tensor([[0.0, -800.0, -5.0], [3.0, 2.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([1, 2])
    rep = selective_report(z, labels)
    ref = -torch.log_softmax(z, 1).gather(1, labels[:, None]).mean()
    assert rep['NLL'] == pytest.approx(float(ref), rel=1e-14)
    assert rep['NLL'] > 400  # a 1e-12 clamp would give at most 27.6 / 2 + ...
    assert 'NLL-clamped' not in rep
    p = torch.softmax(z, 1)
    rep_p = selective_report(p, labels, kind='probs')
    assert rep_p['NLL-clamped'] == 1
    assert rep_p['NLL'] == pytest.approx((-math.log(1e-12) - math.log(float(p[1, 2]))) / 2, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=64), min_size=1, max_size=40), st.integers(0, 2 ** 16))
def test_fixed_sum_is_order_independent_and_accurate(values, seed):
    x = torch.tensor(values, dtype=torch.float64)[None]
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(seed))
    a, b = fixed_sum(x), fixed_sum(x[:, perm])
    assert bool(torch.equal(a, b))  # guaranteed: integer sums of per-term truncations
    exact = math.fsum(values)
    assert abs(float(a) - exact) <= 2 ** -50 * max(abs(v) for v in values) * len(values) + 1e-300


@pytest.mark.parametrize('kind', ['logits', 'log_alpha', 'distance_logits', 'probs'])
def test_a_row_has_the_same_keys_at_every_position(kind):
    """Equal rows tie wherever they stand: torch's vector loops and their scalar tails differ by an
    ulp for some functions (log1p, logaddexp, sigmoid), so a row's key must not depend on its
    position in the tensor (or on its neighbours)."""
    g = torch.Generator().manual_seed(0)
    names = {'logits': ('max-prob', 'margin', 'entropy'), 'log_alpha': ('vacuity', 'margin'),
             'distance_logits': ('MDS', 'MMLS', 'MMLES', 'entropy'), 'probs': ('max-prob', 'margin', 'entropy')}[kind]
    row = torch.tensor([0.3, -2.0, 1.7, 1.69, -40.0], dtype=torch.float64) * 3.1
    if kind == 'distance_logits':
        row = -row.abs()
    if kind == 'probs':
        row = row.softmax(0)
    for n in range(1, 41):
        others = torch.randn(n, 5, generator=g, dtype=torch.float64) * 20
        if kind == 'probs':
            others = others.softmax(1)
        elif kind == 'distance_logits':
            others = -others.abs()
        for pos in {0, n // 2, n - 1}:
            z = others.clone()
            z[pos] = row[torch.randperm(5, generator=g)]
            keys = confidence_keys(z, kind, names)
            if n == 1:
                first = {name: keys[name][pos].item() for name in names}
            for name in names:
                assert keys[name][pos].item() == first[name], (name, n, pos)


@pytest.mark.parametrize('dtype', [torch.float16, torch.float32])
def test_fast_keys_are_within_their_bound_of_the_exact_ones(dtype):
    """confidence_key(exact=False) (binned pixel keys): within fast_softmax_rows' bound of the
    exact keys, including rows past float32's exp (computed exactly)."""
    g = torch.Generator().manual_seed(3)
    scale = torch.logspace(-1, 2.3, 3000, dtype=torch.float64)[:, None]
    z = torch.randn(3000, 19, generator=g, dtype=torch.float64) * scale
    z = z.to(dtype)
    span = (z.double().amax(1) - z.double().amin(1))
    for name in ('max-prob', 'margin', 'entropy'):
        fast, exact = confidence_key(name, z, exact=False), confidence_key(name, z)
        bound = 2 * (2.0 ** -22 + 2.0 ** -24 * span) + 19 * 2.0 ** -50
        finite = torch.isfinite(exact)
        assert torch.equal(torch.isfinite(fast), finite)
        assert bool(((fast - exact).abs()[finite] <= bound[finite] * exact.abs().clamp(min=1)[finite]).all()), name


@pytest.mark.parametrize('values', [[1e-300, 1e-300], [3e-290, -1e-300, 5e-295], [2.0 ** -1000] * 7, [1e-308, 2e-308]])
def test_fixed_sum_of_tiny_terms_keeps_a_finite_grid(values):
    """Rows whose largest term is under 2^-962 once gave 0 (the scale 2^(q - e) overflowed); the
    grid is held at 2^-1023 there, so the error stays under n 2^-1023."""
    got = float(fixed_sum(torch.tensor([values], dtype=torch.float64)))
    assert abs(got - math.fsum(values)) <= len(values) * 2.0 ** -1023
