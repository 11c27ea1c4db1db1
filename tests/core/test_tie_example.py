"""The tie example of docs/metrics.md (section "Ties: an example"): every number of its table
recomputed from the definitions (each order of the tie group by plain loops, the expected curve in
exact fractions, sklearn's ROC for the threshold metrics), equal to uqseg's values and to the
table as printed (4 decimals)."""
import os.path as osp
import re
from fractions import Fraction

import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from tests.helpers.cfg import REPO
from uqseg.core import functional as F

CONF = [0.9, 0.7, 0.7, 0.7, 0.7, 0.2]
GROUP = slice(1, 5)  # the tie group at 0.7, one error in it
N = len(CONF)


def _order(j):
    """Correctness listed in sorted order with the group's error at place j (0..3) of the group."""
    group = [1, 1, 1, 1]
    group[j] = 0
    return [1] + group + [0]


def _aurc(c):
    return sum(Fraction(c[:k].count(0), k) for k in range(1, N + 1)) / N


def _risk(c, k):
    return Fraction(c[:k].count(0), k)


def _coverage_at_accuracy(errors_at, a):
    """Largest k / N with 1 - errors(k) / k >= a (0 if none), errors(k) given for k = 1..N."""
    ok = [k for k in range(1, N + 1) if 1 - errors_at(k) / k >= a]
    return Fraction(max(ok), N) if ok else Fraction(0)


def _expected_errors(k):
    """Errors among the top k with the group's one error spread evenly (1/4 per taken sample)."""
    return Fraction(min(max(k - 1, 0), 4), 4) + (1 if k == N else 0)


def _strict_scores():
    """Scores that order the group as listed (first listed = most confident): one order, no ties."""
    return [0.9, 0.74, 0.73, 0.72, 0.71, 0.2]


def _fpr_at_tpr(correct, scores, tpr):
    fpr, t, _ = roc_curve(correct, scores, drop_intermediate=False)
    return float(fpr[next(i for i, v in enumerate(t) if v >= tpr)])


def _reference():
    """Rows of the table: metric -> ([value of each order], uqseg's convention's value)."""
    orders = [_order(j) for j in range(4)]
    cov_orders = [_coverage_at_accuracy(lambda k, c=c: c[:k].count(0), Fraction(9, 10)) for c in orders]
    return {
        'AURC': ([_aurc(c) for c in orders], sum(_aurc(c) for c in orders) / 4),
        'risk@cov0.5': ([_risk(c, 3) for c in orders], sum(_risk(c, 3) for c in orders) / 4),
        'cov@acc0.9': (cov_orders, _coverage_at_accuracy(_expected_errors, Fraction(9, 10))),
        'AUROC': ([roc_auc_score(c, _strict_scores()) for c in orders], roc_auc_score(orders[0], CONF)),
        'FPR@95TPR': ([_fpr_at_tpr(c, _strict_scores(), 0.95) for c in orders], _fpr_at_tpr(orders[0], CONF, 0.95)),
    }


def test_uqseg_follows_the_tie_conventions_on_the_example():
    conf = torch.tensor(CONF, dtype=torch.float64)
    correct = torch.tensor(_order(3), dtype=torch.bool)  # the input order inside the group does not matter
    ref = _reference()
    got = {'AURC': F.aurc(conf, correct), 'risk@cov0.5': F.risk_at_coverage(conf, correct, 0.5),
           'cov@acc0.9': F.coverage_at_accuracy(conf, correct, 0.9), 'AUROC': F.auroc(conf, correct),
           'FPR@95TPR': F.fpr_at_tpr(conf, correct, 0.95)}
    for name, (_, want) in ref.items():
        assert got[name] == pytest.approx(float(want), abs=1e-12), name
    # the conventions' consequences the docs state
    orders, mean = ref['AURC']
    assert min(orders) < mean < max(orders)
    covs, cov = ref['cov@acc0.9']
    assert cov == Fraction(1, 6) < sum(covs) / 4 < max(covs)
    fprs, fpr = ref['FPR@95TPR']
    assert fpr == 0.5 and fprs == [0.5, 0.5, 0.5, 0.0]
    for j in range(4):  # any listing of the group gives the same numbers (integer counts per group: exact)
        c = torch.tensor(_order(j), dtype=torch.bool)
        assert F.aurc(conf, c) == got['AURC'] and F.fpr_at_tpr(conf, c, 0.95) == got['FPR@95TPR']


def test_the_docs_table_prints_those_numbers():
    with open(osp.join(REPO, 'docs', 'metrics.md'), encoding='utf-8') as f:
        text = f.read()
    section = text.split('### Ties: an example', 1)[1].split('\n## ', 1)[0]
    ref = _reference()
    for name, (orders, want) in ref.items():
        (row,) = re.findall(rf'^\| {re.escape(name)} \|(.*)$', section, flags=re.M)
        cells = [c.strip() for c in row.split('|')][:5]
        assert [float(c) for c in cells] == pytest.approx([float(v) for v in [*orders, want]], abs=5e-5), name
