"""uqseg.core.functional against the spec's oracle, hand-worked cases and reference libraries
(spec section 5 "Metric conventions").

Reference libraries (torchmetrics, netcal, scikit-learn) are compared on random data; every
hard-coded number below is either the spec's small oracle or worked out by hand in a comment.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uqseg.core import functional as F

# the spec's small oracle (section 5)
ORACLE_CONF = [.99, .95, .91, .87, .83, .71, .62, .55, .43, .34]
ORACLE_CORRECT = [1, 0, 1, 1, 1, 0, 1, 0, 0, 1]


def _oracle(dtype=torch.float64):
    return torch.tensor(ORACLE_CONF, dtype=dtype), torch.tensor(ORACLE_CORRECT)


def _random(n, seed, dtype=torch.float64, ties=None):
    """Confidences in (0, 1) and correctness drawn with P(correct) = conf (roughly calibrated).

    ``ties``: round confidences to that many levels to create tie groups.
    """
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(n, generator=g, dtype=torch.float64)
    if ties:
        conf = (torch.floor(conf * ties) + 0.5) / ties
    correct = torch.rand(n, generator=g, dtype=torch.float64) < conf
    return conf.to(dtype), correct


def _aurc_of_order(correct_sorted):
    """Plain-loop AURC of one explicit order (no tie handling): (1/N) sum_k errors(k)/k."""
    err, tot = 0, 0.0
    for k, c in enumerate(correct_sorted, 1):
        err += 1 - c
        tot += err / k
    return tot / len(correct_sorted)


def _orders_within_ties(conf, correct):
    """All orders of ``correct`` sorted by conf descending, permuting inside each tie group."""
    pairs = sorted(zip(conf, correct), key=lambda t: -t[0])
    groups = [[c for _, c in g] for _, g in itertools.groupby(pairs, key=lambda t: t[0])]
    for combo in itertools.product(*[list(itertools.permutations(g)) for g in groups]):
        yield [c for g in combo for c in g]


# ------------------------------------------------------------------------------ spec oracle
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_spec_oracle_values(dtype):
    conf, correct = _oracle(dtype)
    tol = 1e-7 if dtype == torch.float64 else 1e-6
    assert F.aurc(conf, correct) == pytest.approx(0.3121825, abs=1e-7)
    assert F.eaurc(conf, correct) == pytest.approx(0.1995635, abs=1e-7)
    assert F.auroc(conf, correct) == pytest.approx(0.625, abs=1e-12)
    assert F.calibration_error(conf, correct, n_bins=10) == pytest.approx(0.388, abs=tol)
    assert F.calibration_error(conf, correct, n_bins=15) == pytest.approx(0.406, abs=tol)
    assert F.coverage_at_accuracy(conf, correct, 0.75) == pytest.approx(0.5)


def test_oracle_hand_worked_values_of_every_metric():
    conf, correct = _oracle()
    # perfect order: 6 correct then 4 errors -> (1/7 + 2/8 + 3/9 + 4/10) / 10
    assert F.optimal_aurc(conf, correct) == pytest.approx((1 / 7 + 2 / 8 + 3 / 9 + 4 / 10) / 10, abs=1e-15)
    assert F.eaurc(conf, correct) == pytest.approx(F.aurc(conf, correct) - F.optimal_aurc(conf, correct), abs=1e-15)
    # risk(k) = errors among top k / k: errors at ranks 2, 6, 8, 9
    cov, risk = F.risk_coverage_curve(conf, correct)
    errs = [0, 1, 1, 1, 1, 2, 2, 3, 4, 4]
    assert risk.tolist() == pytest.approx([e / k for k, e in enumerate(errs, 1)], abs=1e-15)
    assert cov.tolist() == pytest.approx([k / 10 for k in range(1, 11)], abs=1e-15)
    assert F.risk_at_coverage(conf, correct, 0.5) == pytest.approx(1 / 5)
    assert F.risk_at_coverage(conf, correct, 0.3) == pytest.approx(1 / 3)  # 0.3*10 is 3.0000000000000004
    assert F.risk_at_coverage(conf, correct, 0.25) == pytest.approx(1 / 3)  # ceil(2.5) = 3
    assert F.risk_at_coverage(conf, correct, 1.0) == pytest.approx(0.4)
    # selective accuracies 1, .5, .67, .75, .8, .67, .71, .625, .56, .6
    assert F.coverage_at_accuracy(conf, correct, 0.8) == pytest.approx(0.5)
    assert F.coverage_at_accuracy(conf, correct, 0.7) == pytest.approx(0.7)
    assert F.coverage_at_accuracy(conf, correct, 0.6) == pytest.approx(1.0)
    assert F.coverage_at_accuracy(conf, correct, 1.0) == pytest.approx(0.1)
    # AUPR-Error: errors (by ascending conf) at .43, .55, .71, .95 have precision 1/2, 2/3, 3/5, 4/9
    assert F.aupr(conf, correct) == pytest.approx((1 / 2 + 2 / 3 + 3 / 5 + 4 / 9) / 4, abs=1e-12)
    # AUPR-Success: correct ones (descending) at ranks 1, 3, 4, 5, 7, 10
    assert F.aupr(conf, correct, positive='correct') == pytest.approx(
        (1 / 1 + 2 / 3 + 3 / 4 + 4 / 5 + 5 / 7 + 6 / 10) / 6, abs=1e-12)
    # 95% of 6 correct needs all 6 -> threshold .34 accepts all 4 errors; 80% needs 5 (rank 7)
    assert F.fpr_at_tpr(conf, correct) == pytest.approx(1.0)
    assert F.fpr_at_tpr(conf, correct, tpr=0.8) == pytest.approx(2 / 4)
    # ACE, 5 equal-mass bins of 2 (ascending): gaps .115, .085, .27, .11, .47
    assert F.adaptive_calibration_error(conf, correct, n_bins=5) == pytest.approx(0.21, abs=1e-12)
    # OE, 10 bins: over-confident bins are (.4,.5]: .43 acc 0; (.5,.6]: .55 acc 0; (.7,.8]: .71
    # acc 0; (.9,1]: conf .95 acc 2/3
    oe = (.43 * .43 + .55 * .55 + .71 * .71 + 3 * .95 * (.95 - 2 / 3)) / 10
    assert F.overconfidence_error(conf, correct, n_bins=10) == pytest.approx(oe, abs=1e-12)


def test_fpr_at_tpr_takes_the_first_threshold_reaching_the_tpr():
    # 20 correct / 4 errors by descending conf: 10 ok, err, 9 ok, err, ok, err, err.
    # TPR reaches exactly 19/20 = 0.95 after the 9-run, with 1 error accepted -> FPR 1/4
    # (">=": the first threshold whose TPR >= 0.95); exactly 10/20 = 0.5 before any error.
    pattern = [1] * 10 + [0] + [1] * 9 + [0] + [1] + [0, 0]
    conf = torch.linspace(0.99, 0.01, len(pattern), dtype=torch.float64)
    correct = torch.tensor(pattern)
    assert F.fpr_at_tpr(conf, correct, 0.95) == pytest.approx(0.25)
    assert F.fpr_at_tpr(conf, correct, 0.5) == 0.0
    assert F.fpr_at_tpr(conf, correct, 1.0) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------ ties
def test_tie_group_counts_its_errors_in_expectation():
    conf = torch.tensor([0.8, 0.8, 0.8, 0.8])
    # 2 errors in a group of 4: the first j contribute j/2 errors -> risk 1/2 at every k
    _, risk = F.risk_coverage_curve(conf, torch.tensor([1, 0, 1, 0]))
    assert risk.tolist() == pytest.approx([0.5] * 4)
    assert F.aurc(conf, torch.tensor([0, 1, 0, 1])) == pytest.approx(0.5)
    assert F.auroc(conf, torch.tensor([0, 1, 0, 1])) == pytest.approx(0.5)


def test_coverage_at_accuracy_uses_expected_value_ties():
    # conf 1.0 (correct), then a tie group {.5 correct, .5 wrong}. Expected selective accuracy:
    # k=1: 1, k=2: (1 + 1/2)/2 = .75, k=3: 2/3. Read at every k (our convention) the coverage at
    # accuracy .75 is 2/3; read only at tie-group ends it would be 1/3.
    conf, correct = torch.tensor([0.5, 1.0, 0.5]), torch.tensor([0, 1, 1])
    assert F.coverage_at_accuracy(conf, correct, 0.75) == pytest.approx(2 / 3)
    assert F.coverage_at_accuracy(conf, correct, 0.76) == pytest.approx(1 / 3)
    assert F.coverage_at_accuracy(conf, correct, 0.6) == pytest.approx(1.0)
    assert F.risk_at_coverage(conf, correct, 0.5) == pytest.approx(0.25)  # k = ceil(1.5) = 2
    # none reaches the target -> 0
    assert F.coverage_at_accuracy(torch.tensor([0.9, 0.2]), torch.tensor([0, 0]), 0.1) == 0.0
    # target 0 is reached by everything
    assert F.coverage_at_accuracy(torch.tensor([0.9, 0.2]), torch.tensor([0, 0]), 0.0) == 1.0


@pytest.mark.parametrize('seed', range(4))
def test_ties_match_brute_force_average_over_orders(seed):
    rng = np.random.default_rng(seed)
    n = 8
    conf = rng.choice([0.2, 0.5, 0.9], size=n).tolist()
    correct = rng.integers(0, 2, size=n).tolist()
    orders = list(_orders_within_ties(conf, correct))
    assert len(orders) > 1
    brute_aurc = np.mean([_aurc_of_order(o) for o in orders])
    brute_curve = np.mean([np.cumsum(1 - np.array(o)) / np.arange(1, n + 1) for o in orders], axis=0)
    c, y = torch.tensor(conf, dtype=torch.float64), torch.tensor(correct)
    assert F.aurc(c, y) == pytest.approx(brute_aurc, abs=1e-12)
    assert F.risk_coverage_curve(c, y)[1].numpy() == pytest.approx(brute_curve, abs=1e-12)
    for cov in (0.1, 0.3, 0.5, 0.75):
        k = math.ceil(cov * n)
        assert F.risk_at_coverage(c, y, cov) == pytest.approx(brute_curve[k - 1], abs=1e-12)
    # perfect ordering: over all orders of the *values* the minimum AURC is the optimum
    if 0 < sum(correct) < n:
        perfect = _aurc_of_order(sorted(correct, reverse=True))
        assert F.optimal_aurc(c, y) == pytest.approx(perfect, abs=1e-12)
        assert F.eaurc(c, y) == pytest.approx(brute_aurc - perfect, abs=1e-12)


def test_ties_match_monte_carlo_mean_over_random_tie_breaks():
    # bigger tie groups than can be enumerated: mean over random tie-breaks -> expectation
    conf, correct = _random(60, seed=3, ties=4)
    g = torch.Generator().manual_seed(0)
    vals = []
    for _ in range(2000):
        key = conf + 1e-6 * torch.rand(conf.shape, generator=g, dtype=torch.float64)  # random tie-break
        order = torch.argsort(key, descending=True)
        vals.append(_aurc_of_order(correct[order].long().tolist()))
    # standard error of the mean ~ std/sqrt(2000); 5 sigma
    se = np.std(vals) / math.sqrt(len(vals))
    assert abs(F.aurc(conf, correct) - np.mean(vals)) < 5 * se + 1e-12


@pytest.mark.parametrize('ties', [None, 5])
def test_invariant_to_input_order(ties):
    conf, correct = _random(500, seed=1, ties=ties)
    perm = torch.randperm(500, generator=torch.Generator().manual_seed(7))
    fns = [F.aurc, F.eaurc, F.auroc, F.aupr, F.fpr_at_tpr, F.adaptive_calibration_error,
           F.calibration_error, lambda c, y: F.coverage_at_accuracy(c, y, 0.8),
           lambda c, y: F.risk_at_coverage(c, y, 0.37), lambda c, y: F.aupr(c, y, 'correct')]
    for fn in fns:
        assert fn(conf[perm], correct[perm]) == pytest.approx(fn(conf, correct), abs=1e-12, rel=0)
    c1, r1 = F.risk_coverage_curve(conf, correct)
    c2, r2 = F.risk_coverage_curve(conf[perm], correct[perm])
    assert torch.allclose(r1, r2, atol=1e-12, rtol=0) and torch.equal(c1, c2)


def test_ace_splits_tie_groups_in_expectation():
    # 4 samples, 2 bins; tie group {.6 correct, .6 wrong, .6 wrong} crosses the boundary at 2:
    # bin 0 = {.2 (wrong), one .6 with 1/3 correct}: conf .4, acc 1/6; bin 1 = two .6 with 2/3
    # correct: conf .6, acc 1/3. ACE = (2*|.4-1/6| + 2*|.6-1/3|)/4 = (7/15 + 8/15)/4 = 1/4
    conf = torch.tensor([0.6, 0.2, 0.6, 0.6], dtype=torch.float64)
    for correct in ([1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]):
        assert F.adaptive_calibration_error(conf, torch.tensor(correct), n_bins=2) == pytest.approx(0.25)
    # remainder: N=5, 2 bins -> sizes floor(5/2)=2 and 3
    conf = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)
    correct = torch.tensor([1, 1, 0, 0, 0])
    # bin 0 {.1, .2} acc 1: gap .85 * 2; bin 1 {.3,.4,.5} acc 0: gap .4 * 3 -> (1.7 + 1.2)/5
    assert F.adaptive_calibration_error(conf, correct, n_bins=2) == pytest.approx(2.9 / 5)
    # more bins than samples: empty bins skipped -> one sample per bin -> mean |conf - correct|
    assert F.adaptive_calibration_error(conf, correct, n_bins=8) == pytest.approx(
        (0.9 + 0.8 + 0.3 + 0.4 + 0.5) / 5)


# ----------------------------------------------------------------------------- torchmetrics
@pytest.mark.parametrize('norm', ['l1', 'l2', 'max'])
@pytest.mark.parametrize('n_bins', [10, 15])
def test_matches_torchmetrics_on_continuous_data(norm, n_bins):
    tmf = pytest.importorskip('torchmetrics.functional.classification')
    g = torch.Generator().manual_seed(n_bins)
    # binary, positive-class confidence: correct is the label
    p = torch.rand(3000, generator=g)
    y = (torch.rand(3000, generator=g) < p ** 1.5).long()
    ref = float(tmf.binary_calibration_error(p, y, n_bins=n_bins, norm=norm))
    assert F.calibration_error(p, y, n_bins=n_bins, norm=norm) == pytest.approx(ref, abs=1e-6)
    # multiclass, top-label confidence
    logits = 3 * torch.randn(3000, 5, generator=g)
    probs = logits.softmax(1)
    target = torch.randint(0, 5, (3000,), generator=g)
    target[:1500] = probs[:1500].argmax(1)  # make accuracy non-trivial
    ref = float(tmf.multiclass_calibration_error(probs, target, num_classes=5, n_bins=n_bins, norm=norm))
    conf, pred = probs.max(1)
    assert F.calibration_error(conf, pred == target, n_bins=n_bins, norm=norm) == pytest.approx(ref, abs=1e-6)


def test_torchmetrics_bin_edge_convention_differs():
    """torchmetrics bins are [k/n, (k+1)/n) plus a hidden bin for exactly 1.0 (it bucketizes
    with ``right=True`` against linspace(0, 1, n+1)); uqseg bins are (k/n, (k+1)/n] and 1.0 is in
    the last bin (spec section 5). They only differ for confidences exactly on an edge."""
    tmf = pytest.importorskip('torchmetrics.functional.classification')
    # conf exactly 1.0: uqseg puts {1.0 wrong, .95 right} in bin 9: conf .975, acc .5 -> .475;
    # torchmetrics: 1.0 alone (gap 1) and .95 alone (gap .05) -> (1 + .05)/2 = .525
    conf, y = torch.tensor([1.0, 0.95]), torch.tensor([0, 1])
    assert F.calibration_error(conf, y, n_bins=10) == pytest.approx(0.475, abs=1e-6)
    assert float(tmf.binary_calibration_error(conf, y, n_bins=10)) == pytest.approx(0.525, abs=1e-6)
    # conf exactly on the inner edge 0.5: uqseg (.4,.5] = {.45 wrong, .5 right}: gap .025 * 2/3,
    # (.5,.6] = {.55 right}: gap .45 * 1/3 -> 1/60 + .15 = 1/6. torchmetrics [.4,.5) = {.45}: .45/3,
    # [.5,.6) = {.5, .55} both right: gap .475 * 2/3 -> .15 + .95/3 = .4667
    conf, y = torch.tensor([0.5, 0.45, 0.55]), torch.tensor([1, 0, 1])
    assert F.calibration_error(conf, y, n_bins=10) == pytest.approx(1 / 6, abs=1e-6)
    assert float(tmf.binary_calibration_error(conf, y, n_bins=10)) == pytest.approx(0.15 + 0.95 / 3, abs=1e-6)


# ------------------------------------------------------------------------------------ netcal
# netcal's convention (netcal 1.4, metrics/Miscalibration.py; ECE with equal_intervals=True):
# confidences are first clipped to [eps, 1 - eps] (float eps), then binned with
# np.histogramdd / binned_statistic_dd over linspace(0, 1, n + 1), i.e. bins [k/n, (k+1)/n)
# (left-closed, like torchmetrics) but with no hidden bin: the clipping puts 1.0 in the last bin
# and 0 in the first. 2-D X with > 2 distinct labels is multiclass top-label (max p vs
# argmax == y); 1-D X with 0/1 labels is positive-class (matched = y). ECE = sum (n_k/N)|acc-conf|,
# the same formula as ours, so on data without values on inner edges the two agree.
@pytest.mark.parametrize('n_bins', [10, 15])
def test_matches_netcal_on_continuous_data(n_bins):
    metrics = pytest.importorskip('netcal.metrics')
    g = torch.Generator().manual_seed(100 + n_bins)
    # positive-class (binary) form
    p = torch.rand(2000, generator=g, dtype=torch.float64)
    y = (torch.rand(2000, generator=g, dtype=torch.float64) < p ** 2).long()
    ref = metrics.ECE(bins=n_bins).measure(p.numpy(), y.numpy())
    assert F.calibration_error(p, y, n_bins=n_bins) == pytest.approx(ref, abs=1e-6)
    # both put exactly 1.0 in the last bin (unlike torchmetrics)
    p1, y1 = torch.tensor([1.0, 0.95], dtype=torch.float64), torch.tensor([0, 1])
    assert F.calibration_error(p1, y1, n_bins=10) == pytest.approx(
        metrics.ECE(bins=10).measure(p1.numpy(), y1.numpy()), abs=1e-6)
    # multiclass top-label form
    logits = 2 * torch.randn(2000, 4, generator=g, dtype=torch.float64)
    probs = logits.softmax(1)
    target = torch.randint(0, 4, (2000,), generator=g)
    target[:1000] = probs[:1000].argmax(1)
    conf, pred = probs.max(1)
    ref = metrics.ECE(bins=n_bins).measure(probs.numpy(), target.numpy())
    assert F.calibration_error(conf, pred == target, n_bins=n_bins) == pytest.approx(ref, abs=1e-6)


# ------------------------------------------------------------------------------ scikit-learn
@pytest.mark.parametrize('ties', [None, 7])
def test_matches_sklearn_ranking_metrics(ties):
    skm = pytest.importorskip('sklearn.metrics')
    conf, correct = _random(2000, seed=11, ties=ties)
    c, y = conf.numpy(), correct.numpy().astype(int)
    assert F.auroc(conf, correct) == pytest.approx(skm.roc_auc_score(y, c), abs=1e-12)
    assert F.aupr(conf, correct) == pytest.approx(skm.average_precision_score(1 - y, -c), abs=1e-12)
    assert F.aupr(conf, correct, 'correct') == pytest.approx(skm.average_precision_score(y, c), abs=1e-12)
    fpr, tpr, _ = skm.roc_curve(y, c, drop_intermediate=False)
    for t in (0.5, 0.9, 0.95):
        assert F.fpr_at_tpr(conf, correct, t) == pytest.approx(fpr[np.argmax(tpr >= t)], abs=1e-12)


def test_matches_sklearn_scoring_rules():
    skm = pytest.importorskip('sklearn.metrics')
    g = torch.Generator().manual_seed(5)
    p = torch.rand(1000, generator=g, dtype=torch.float64)
    y = (torch.rand(1000, generator=g, dtype=torch.float64) < p).long()
    assert F.brier_score(p, y) == pytest.approx(skm.brier_score_loss(y.numpy(), p.numpy()), abs=1e-12)
    assert F.nll(p, y) == pytest.approx(skm.log_loss(y.numpy(), p.numpy()), abs=1e-12)
    probs = (2 * torch.randn(1000, 6, generator=g, dtype=torch.float64)).softmax(1)
    t = torch.randint(0, 6, (1000,), generator=g)
    onehot = np.eye(6)[t.numpy()]
    assert F.brier_score(probs, t) == pytest.approx(((probs.numpy() - onehot) ** 2).sum(1).mean(), abs=1e-12)
    assert F.nll(probs, t) == pytest.approx(skm.log_loss(t.numpy(), probs.numpy(), labels=range(6)), abs=1e-12)


def test_scoring_rules_hand_worked_and_dense_equals_flat():
    # p = (.7, .2, .1), y = 0: (.3^2 + .2^2 + .1^2) = .14; nll = -ln .7
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    assert F.brier_score(probs, torch.tensor([0])) == pytest.approx(0.14)
    assert F.nll(probs, torch.tensor([0])) == pytest.approx(-math.log(0.7))
    # binary: p=.8, y=0 -> .64 (half of the two-class value 2 * .64)
    assert F.brier_score(torch.tensor([0.8]), torch.tensor([0])) == pytest.approx(0.64)
    assert F.nll(torch.tensor([0.0]), torch.tensor([1]), eps=1e-6) == pytest.approx(-math.log(1e-6))
    # dense (N, C, H, W) equals the flattened (N*H*W, C) form
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64).softmax(1)
    t = torch.randint(0, 3, (2, 4, 5), generator=g)
    flat_p, flat_t = probs.permute(0, 2, 3, 1).reshape(-1, 3), t.reshape(-1)
    assert F.brier_score(probs, t) == pytest.approx(F.brier_score(flat_p, flat_t), abs=1e-14)
    assert F.nll(probs, t) == pytest.approx(F.nll(flat_p, flat_t), abs=1e-14)


def test_score_sums_are_the_sums_behind_nll_and_brier_with_a_valid_mask():
    g = torch.Generator().manual_seed(3)
    # multiclass (N, C, H, W): sums over the valid pixels equal the means times their count
    probs = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64).softmax(1)
    t = torch.randint(0, 3, (2, 4, 5), generator=g)
    valid = torch.rand(2, 4, 5, generator=g) < 0.7
    junk = t.masked_fill(~valid, 77)  # anything where valid is False
    nll_sum, brier_sum, n, clamped = F.score_sums(probs, junk, valid).tolist()
    flat_p, flat_t = probs.permute(0, 2, 3, 1)[valid], t[valid]
    assert n == int(valid.sum()) and clamped == 0
    assert nll_sum / n == pytest.approx(F.nll(flat_p, flat_t), abs=1e-14)
    assert brier_sum / n == pytest.approx(F.brier_score(flat_p, flat_t), abs=1e-14)
    # binary (same shapes): positive-class probabilities; eps clamps the log
    p = torch.tensor([0.0, 0.8, 0.3], dtype=torch.float64)
    y = torch.tensor([1, 0, 0])
    out = F.score_sums(p, y, eps=1e-6)
    assert out.dtype == torch.float64 and out.tolist() == pytest.approx(
        [-math.log(1e-6) - math.log(0.2) - math.log(0.7), 1 + 0.64 + 0.09, 3, 1])  # the first term clamped
    assert F.score_sums(p, y, torch.tensor([False, True, False]))[2:].tolist() == [1, 0]


def test_score_sums_from_logits_are_the_exact_log_softmax():
    """Issue 19, item 3: with the logits the NLL is the log-softmax, also where p_y underflows
    (float32 softmax gives 0 there and the clamp 27.6 instead of hundreds); nothing is clamped."""
    z = torch.tensor([[[0.0, 3.0]], [[-200.0, 2.0]], [[5.0, -90.0]]]).permute(1, 0, 2)  # (1, 3 classes, 2 pixels)
    y = torch.tensor([[1, 2]])
    p = z.softmax(1)
    nll_sum, brier_sum, n, clamped = F.score_sums(p, y, logits=z).tolist()
    ref = -torch.log_softmax(z.double(), 1).gather(1, y[:, None]).sum()
    assert n == 2 and clamped == 0 and nll_sum == pytest.approx(float(ref), rel=1e-6)
    assert nll_sum > 200  # the clamped value would be below 2 * 27.7
    clamped_sum, _, _, count = F.score_sums(p, y).tolist()  # p_y is 0 and 4e-41 in float32: both clamped
    assert count == 2 and clamped_sum == pytest.approx(-2 * math.log(1e-12), rel=1e-6)  # float32 terms


def test_check_probs_target_tells_binary_from_multiclass_and_rejects_bad_shapes():
    assert F.check_probs_target(torch.rand(4), torch.tensor([0, 1, 1, 0])) is True
    assert F.check_probs_target(torch.full((4, 3), 1 / 3), torch.tensor([0, 2, 1, 0])) is False
    with pytest.raises(ValueError, match=r'probs must be \(N, C, \.\.\.\) with target \(N, \.\.\.\)'):
        F.check_probs_target(torch.full((4, 3), 1 / 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='integer class indices'):
        F.check_probs_target(torch.full((2, 3), 1 / 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match='floating-point'):
        F.check_probs_target(torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match='torch.Tensors'):
        F.check_probs_target([0.5], torch.tensor([0]))


def test_nanmean_skips_nan_and_is_nan_without_values():
    assert F.nanmean([0.25, math.nan, 0.75]) == pytest.approx(0.5)
    assert F.nanmean(torch.tensor([1.0, 2.0])) == pytest.approx(1.5)
    assert math.isnan(F.nanmean([math.nan, math.nan])) and math.isnan(F.nanmean([]))


# -------------------------------------------------------------------------------- validation
@pytest.mark.parametrize('fn', [F.calibration_error, F.aurc, F.auroc, F.adaptive_calibration_error,
                                F.overconfidence_error, F.aupr, F.fpr_at_tpr, F.eaurc])
def test_invalid_conf_raises(fn):
    y = torch.tensor([1, 0, 1])
    with pytest.raises(ValueError, match=r'conf.*finite.*nan'):
        fn(torch.tensor([0.5, float('nan'), 0.2]), y)
    with pytest.raises(ValueError, match=r'conf.*finite.*inf'):
        fn(torch.tensor([0.5, float('inf'), 0.2]), y)
    with pytest.raises(ValueError, match=r'conf.*\[0, 1\].*1\.5'):
        fn(torch.tensor([0.5, 1.5, 0.2]), y)
    with pytest.raises(ValueError, match=r'conf.*\[0, 1\].*-0\.1'):
        fn(torch.tensor([0.5, -0.1, 0.2]), y)
    with pytest.raises(ValueError, match='same shape'):
        fn(torch.tensor([0.5, 0.2]), y)
    with pytest.raises(ValueError, match='floating-point'):
        fn(torch.tensor([1, 0, 1]), y)


def test_invalid_correct_bins_norm_and_targets_raise():
    c, y = _oracle()
    with pytest.raises(ValueError, match=r'correct.*0/1.*2'):
        F.aurc(c, y * 2)
    with pytest.raises(ValueError, match=r'correct.*\[0, 1\].*2'):
        F.calibration_error(c, y * 2)
    with pytest.raises(ValueError, match='n_bins.*0'):
        F.calibration_error(c, y, n_bins=0)
    with pytest.raises(ValueError, match="norm.*'l3'"):
        F.calibration_error(c, y, norm='l3')
    with pytest.raises(ValueError, match='coverage.*0'):
        F.risk_at_coverage(c, y, 0.0)
    with pytest.raises(ValueError, match='target_accuracy.*1.5'):
        F.coverage_at_accuracy(c, y, 1.5)
    with pytest.raises(ValueError, match="positive.*'both'"):
        F.aupr(c, y, positive='both')
    with pytest.raises(ValueError, match=r'target.*\[0, 2\].*3'):
        F.brier_score(torch.full((2, 3), 1 / 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match='probs.*finite'):
        F.nll(torch.tensor([[float('nan'), 1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r'target.*0/1.*2'):
        F.brier_score(torch.tensor([0.5]), torch.tensor([2]))


def test_empty_input_gives_nan():
    c, y = torch.zeros(0), torch.zeros(0, dtype=torch.bool)
    for fn in [F.calibration_error, F.overconfidence_error, F.adaptive_calibration_error, F.aurc,
               F.eaurc, F.optimal_aurc, F.auroc, F.aupr, F.fpr_at_tpr]:
        assert math.isnan(fn(c, y))
    assert math.isnan(F.coverage_at_accuracy(c, y, 0.9))
    assert math.isnan(F.risk_at_coverage(c, y, 0.5))
    cov, risk = F.risk_coverage_curve(c, y)
    assert cov.numel() == 0 and risk.numel() == 0
    assert math.isnan(F.brier_score(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))
    assert math.isnan(F.nll(torch.zeros(0), torch.zeros(0, dtype=torch.long)))
    # undefined with a single class present
    assert math.isnan(F.auroc(torch.tensor([0.3, 0.9]), torch.tensor([1, 1])))
    assert math.isnan(F.aupr(torch.tensor([0.3, 0.9]), torch.tensor([1, 1])))  # no errors
    assert math.isnan(F.fpr_at_tpr(torch.tensor([0.3, 0.9]), torch.tensor([0, 0])))


# ---------------------------------------------------------------------------- properties
_unit = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False)
_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(st.lists(st.tuples(_unit, st.booleans()), min_size=1, max_size=60), st.integers(1, 20))
def test_calibration_errors_in_unit_interval(data, n_bins):
    conf = torch.tensor([c for c, _ in data], dtype=torch.float64)
    correct = torch.tensor([y for _, y in data])
    ece = F.calibration_error(conf, correct, n_bins)
    rms = F.calibration_error(conf, correct, n_bins, norm='l2')
    mce = F.calibration_error(conf, correct, n_bins, norm='max')
    assert 0 <= ece <= rms + 1e-12 <= mce + 2e-12 <= 1 + 2e-12
    assert 0 <= F.overconfidence_error(conf, correct, n_bins) <= ece + 1e-12
    assert 0 <= F.adaptive_calibration_error(conf, correct, n_bins) <= 1 + 1e-12
    for v in (F.aurc(conf, correct), F.optimal_aurc(conf, correct)):
        assert 0 <= v <= 1
    assert F.eaurc(conf, correct) >= -1e-12


@_SETTINGS
@given(st.lists(st.integers(1, 12).flatmap(lambda m: st.tuples(st.just(m), st.integers(0, m))),
                min_size=1, max_size=8), st.integers(1, 20), st.randoms(use_true_random=False))
def test_ece_zero_when_each_confidence_equals_its_accuracy(groups, n_bins, rnd):
    # m samples share confidence c/m and exactly c of them are correct: any bin mixes such groups
    # with mean confidence == accuracy, so ECE, MCE, OE and ACE (ties split in expectation) are 0.
    conf, correct = [], []
    for m, c in groups:
        conf += [c / m] * m
        correct += [1] * c + [0] * (m - c)
    order = list(range(len(conf)))
    rnd.shuffle(order)
    conf = torch.tensor([conf[i] for i in order], dtype=torch.float64)
    correct = torch.tensor([correct[i] for i in order])
    for norm in ('l1', 'l2', 'max'):
        assert F.calibration_error(conf, correct, n_bins, norm) == pytest.approx(0, abs=1e-12)
    assert F.overconfidence_error(conf, correct, n_bins) == pytest.approx(0, abs=1e-12)
    assert F.adaptive_calibration_error(conf, correct, n_bins) == pytest.approx(0, abs=1e-12)


@_SETTINGS
@given(st.lists(st.tuples(st.sampled_from([0.1, 0.3, 0.3001, 0.6, 0.9, 1.0]), st.booleans()),
                min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_ranking_metrics_order_invariant_and_aurc_bounds(data, rnd):
    conf = torch.tensor([c for c, _ in data], dtype=torch.float64)
    correct = torch.tensor([y for _, y in data])
    perm = list(range(len(data)))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    for fn in (F.aurc, F.auroc, F.aupr, F.fpr_at_tpr, F.adaptive_calibration_error):
        a, b = fn(conf, correct), fn(conf[perm], correct[perm])
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)
    # AURC lies between the best and the worst order of the same errors
    worst = _aurc_of_order(sorted(correct.tolist()))
    assert F.optimal_aurc(conf, correct) - 1e-12 <= F.aurc(conf, correct) <= worst + 1e-12


# ----------------------------------------------------------------------------------- device
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_results_match_cpu():
    conf, correct = _random(4000, seed=2, dtype=torch.float32, ties=50)
    fns = [F.aurc, F.eaurc, F.auroc, F.aupr, F.fpr_at_tpr, F.calibration_error,
           F.adaptive_calibration_error, F.overconfidence_error,
           lambda c, y: F.coverage_at_accuracy(c, y, 0.9), lambda c, y: F.risk_at_coverage(c, y, 0.5)]
    for fn in fns:
        assert fn(conf.cuda(), correct.cuda()) == pytest.approx(fn(conf, correct), abs=1e-9)
    probs = torch.rand(100, 4).softmax(1)
    t = torch.randint(0, 4, (100,))
    assert F.brier_score(probs.cuda(), t.cuda()) == pytest.approx(F.brier_score(probs, t), abs=1e-9)
