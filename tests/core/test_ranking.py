"""uqseg.core.ranking: group-count forms of the ranking metrics equal direct sums / the functional
metrics on the same tie groups."""
import math

import pytest
import torch

from uqseg.core import functional as F
from uqseg.core.ranking import (
    aurc_of_groups,
    auroc_from_groups,
    average_precision_from_groups,
    fpr_from_groups,
    harmonic_diff,
    optimal_aurc_from_counts,
)


def test_harmonic_diff_equals_the_direct_sum_in_both_branches():
    for a, b in ((0, 0), (0, 7), (3, 50), (999, 1500), (1000, 1001), (5000, 9000), (10 ** 6, 10 ** 6 + 300)):
        direct = float((1 / torch.arange(a + 1, b + 1, dtype=torch.float64)).sum())
        got = float(harmonic_diff(torch.tensor(float(a)), torch.tensor(float(b))))
        assert got == pytest.approx(direct, rel=1e-12, abs=1e-15), (a, b)


def test_optimal_aurc_from_counts_closed_form_for_large_counts():
    # E-AURC optimum for N above the exact-sum cut-off (digamma / asymptotic harmonic numbers)
    n, e = 1_500_000, 400_000
    k = torch.arange(n - e + 1, n + 1, dtype=torch.float64)
    direct = float(((k - (n - e)) / k).sum() / n)
    assert optimal_aurc_from_counts(float(n), float(e)) == pytest.approx(direct, abs=1e-12)
    assert math.isnan(optimal_aurc_from_counts(0.0, 0.0))


def test_group_forms_equal_the_functional_metrics_on_tie_groups():
    # three tie groups (descending confidence .9, .6, .2) with (correct, error) counts
    ok = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    err = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    conf = torch.cat([torch.full((int(ok[i] + err[i]),), c, dtype=torch.float64) for i, c in enumerate((.9, .6, .2))])
    correct = torch.cat([torch.tensor([1] * int(ok[i]) + [0] * int(err[i])) for i in range(3)])
    size = ok + err
    starts = size.cumsum(0) - size
    e_before = err.cumsum(0) - err
    n = float(size.sum())
    aurc = float(aurc_of_groups(starts, size, e_before, err).sum()) / n
    assert aurc == pytest.approx(F.aurc(conf, correct), abs=1e-12)
    assert auroc_from_groups(ok, err) == pytest.approx(F.auroc(conf, correct), abs=1e-12)
    # AUPR-Error: errors are the positives, ranked by ascending confidence
    assert average_precision_from_groups(err.flip(0), ok.flip(0)) == pytest.approx(F.aupr(conf, correct), abs=1e-12)
    for tpr in (0.5, 0.95):
        assert fpr_from_groups(ok, err, tpr) == pytest.approx(F.fpr_at_tpr(conf, correct, tpr), abs=1e-12)
    # one class only: undefined
    zero = torch.zeros(3, dtype=torch.float64)
    assert math.isnan(auroc_from_groups(ok, zero)) and math.isnan(fpr_from_groups(zero, err, 0.95))
    assert math.isnan(average_precision_from_groups(zero, ok))
