"""uqseg.core.selective (confidence_scores, selective_report) and the one-sort paths of
uqseg.core.functional (selective_metrics, threshold_metrics), against the spec's oracle (section 5),
scikit-learn, torchmetrics, netcal and brute force written here with exact fractions.

Every hard-coded number is the spec's oracle or worked out by hand in a comment.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from tests.helpers.files import assert_png
from tests.helpers.ranking import brute_fpr_at_tpr
from uqseg.core import functional as F
from uqseg.core.binning import bin_sums, reliability
from uqseg.core.output_layers import DisMaxLayer, EDLLayer
from uqseg.core.plots import plot_reliability_diagram, plot_risk_coverage_curves
from uqseg.core.scores import raw_score
from uqseg.core.selective import CONFIDENCES, PROB_SCORES, confidence_scores, selective_report

pytestmark = pytest.mark.usefixtures('one_thread')
D64 = torch.float64
ORACLE_CONF = [.99, .95, .91, .87, .83, .71, .62, .55, .43, .34]
ORACLE_CORRECT = [1, 0, 1, 1, 1, 0, 1, 0, 0, 1]


def rows_with_max_prob(conf, correct, k=10, seed=None):
    """``(probs, labels)``: row i has top probability ``conf[i]`` on class ``c_i`` (the rest spread
    evenly, each below ``conf[i]`` as long as ``conf[i] > 1/k``) and label ``c_i`` if correct,
    another class otherwise. ``seed`` draws ``c_i`` at random, else class 0."""
    conf = torch.as_tensor(conf, dtype=D64)
    correct = torch.as_tensor(correct).bool()
    n = conf.numel()
    if seed is None:
        top = torch.zeros(n, dtype=torch.long)
    else:
        top = torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))
    p = ((1 - conf) / (k - 1))[:, None].repeat(1, k)
    p[torch.arange(n), top] = conf
    labels = torch.where(correct, top, (top + 1) % k)
    return p, labels


def oracle_logits(k=10):
    p, labels = rows_with_max_prob(ORACLE_CONF, ORACLE_CORRECT, k)
    return p.log(), labels


def random_model(n=600, k=5, seed=0, dup=True, kind='logits'):
    """Random outputs with labels that agree more with confident rows; duplicated rows make tie groups
    in every confidence."""
    g = torch.Generator().manual_seed(seed)
    z = 2.5 * torch.randn(n, k, generator=g, dtype=D64)
    if dup:
        z = torch.cat([z, z[: n // 3], z[: n // 6]])
    if kind == 'log_alpha':
        z = torch.log1p(torch.nn.functional.softplus(z))
    elif kind == 'distance_logits':
        z = -z.abs()
    p = z.softmax(1)
    conf, pred = p.max(1)
    right = torch.rand(z.shape[0], generator=g, dtype=D64) < conf
    labels = torch.where(right, pred, (pred + 1 + torch.randint(0, k - 1, pred.shape, generator=g)) % k)
    return z, labels


def _approx_equal(a: dict, b: dict, tol=1e-12):
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol, (key, x, y)


# ------------------------------------------------------------------------------------- brute force
def _expected_errors(conf, correct):
    """Exact expected errors among the top k (k = 0..N) with ties in expectation, as Fractions."""
    conf, correct = np.asarray(conf, np.float64), np.asarray(correct, np.int64)
    order = np.argsort(-conf, kind='stable')
    c, ok = conf[order], correct[order]
    out, k, before = [Fraction(0)], 0, Fraction(0)
    n = len(c)
    while k < n:
        j = k
        while j < n and c[j] == c[k]:
            j += 1
        m, e = j - k, int((1 - ok[k:j]).sum())
        for i in range(1, m + 1):
            out.append(before + Fraction(i * e, m))
        before += e
        k = j
    return out


def brute_coverage_at_accuracy(conf, correct, a):
    err, n = _expected_errors(conf, correct), len(conf)
    target = Fraction(a).limit_denominator(10 ** 9)
    ks = [k for k in range(1, n + 1) if 1 - err[k] / k >= target]
    return max(ks) / n if ks else 0.0


def brute_risk_at_coverage(conf, correct, v):
    err, n = _expected_errors(conf, correct), len(conf)
    k = min(max(math.ceil(Fraction(v).limit_denominator(10 ** 9) * n), 1), n)
    return float(err[k] / k)


# ------------------------------------------------------------------------------------------ oracle
@pytest.mark.parametrize('kind', ['logits', 'probs'])
def test_spec_oracle_through_the_report(kind):
    z, labels = oracle_logits()
    if kind == 'probs':
        z = z.exp()
    assert torch.allclose(confidence_scores(z, kind)['max-prob'], torch.tensor(ORACLE_CONF, dtype=D64), atol=1e-12)
    r = selective_report(z, labels, kind, accuracy_targets=(0.75,), n_bins=10)
    assert r['accuracy'] == pytest.approx(0.6)
    assert r['ECE'] == pytest.approx(0.388, abs=1e-9)
    assert selective_report(z, labels, kind, n_bins=15)['ECE'] == pytest.approx(0.406, abs=1e-9)
    # with p = (c, (1 - c)/9, ...), margin and entropy rank like max-prob: same selective values
    for c in CONFIDENCES:
        assert r[f'AURC[{c}]'] == pytest.approx(0.3121825, abs=1e-7)
        assert r[f'E-AURC[{c}]'] == pytest.approx(0.1995635, abs=1e-7)
        assert r[f'AUROC[{c}]'] == pytest.approx(0.625, abs=1e-12)
        assert r[f'cov@acc0.75[{c}]'] == 0.5
        # top 5 = 1,0,1,1,1: 1 error; top 8: 3 errors; top 9: 4; top 10 (0.95 N = 9.5 -> 10): 4
        assert r[f'risk@cov0.5[{c}]'] == pytest.approx(1 / 5)
        assert r[f'risk@cov0.8[{c}]'] == pytest.approx(3 / 8)
        assert r[f'risk@cov0.9[{c}]'] == pytest.approx(4 / 9)
        assert r[f'risk@cov0.95[{c}]'] == pytest.approx(4 / 10)


def test_report_keys_follow_the_plan():
    z, labels = random_model(60, dup=False)
    r = selective_report(z, labels, ood_z=z[:7] * 0.1, fpr_tpr=0.9)
    want = {'accuracy', 'ECE', 'NLL', 'Brier'}
    for c in CONFIDENCES:
        want |= {f'AURC[{c}]', f'E-AURC[{c}]', f'AUROC[{c}]', f'cov@acc0.95[{c}]', f'cov@acc0.99[{c}]',
                 f'OOD-AUROC[{c}]', f'OOD-FPR90[{c}]'} | {f'risk@cov{v}[{c}]' for v in ('0.5', '0.8', '0.9', '0.95')}
    assert set(r) == want
    assert all(isinstance(v, float) for v in r.values())


# ---------------------------------------------------------------------------------- order and ties
def test_order_independent_under_permutations_with_ties():
    z, labels = random_model(300, seed=1)
    ood = random_model(80, seed=2)[0] * 0.3
    base = selective_report(z, labels, ood_z=ood)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        perm = torch.randperm(z.shape[0], generator=g)
        operm = torch.randperm(ood.shape[0], generator=g)
        _approx_equal(selective_report(z[perm], labels[perm], ood_z=ood[operm]), base)
    # the duplicated rows really are ties
    conf = confidence_scores(z)['max-prob']
    assert conf.unique().numel() < conf.numel()


def test_one_sort_paths_equal_the_single_functions():
    z, labels = random_model(400, seed=4)
    p = z.softmax(1)
    conf, pred = p.max(1)
    correct = pred == labels
    targets, covs = (0.6, 0.8, 0.95, 1.0), (0.05, 0.3, 0.5, 1.0)
    m = F.selective_metrics(conf, correct, targets, covs, tpr=0.9, curve=True)
    assert m['AURC'] == F.aurc(conf, correct)
    assert m['E-AURC'] == F.eaurc(conf, correct)
    assert m['AUROC'] == F.auroc(conf, correct)
    assert m['FPR'] == F.fpr_at_tpr(conf, correct, 0.9)
    assert m['coverage_at_accuracy'] == {a: F.coverage_at_accuracy(conf, correct, a) for a in targets}
    assert m['risk_at_coverage'] == {v: F.risk_at_coverage(conf, correct, v) for v in covs}
    cov, risk = F.risk_coverage_curve(conf, correct)
    assert torch.equal(m['curve'][0], cov) and torch.equal(m['curve'][1], risk)
    t = F.threshold_metrics(conf, correct, 0.9)
    assert t == {'AUROC': F.auroc(conf, correct), 'FPR': F.fpr_at_tpr(conf, correct, 0.9)}
    # empty input: NaN everywhere; bad arguments are refused before the sort
    e = F.selective_metrics(conf[:0], correct[:0], (0.9,), (0.5,), tpr=0.95)
    assert all(math.isnan(v) for v in (e['AURC'], e['E-AURC'], e['AUROC'], e['FPR'], e['coverage_at_accuracy'][0.9],
                                       e['risk_at_coverage'][0.5]))
    with pytest.raises(ValueError, match='target_accuracy must lie in'):
        F.selective_metrics(conf, correct, (1.5,))
    with pytest.raises(ValueError, match='coverage must lie in'):
        F.selective_metrics(conf, correct, (), (0.0,))


# -------------------------------------------------------------------------- independent references
@pytest.mark.parametrize('kind', ['logits', 'log_alpha', 'distance_logits'])
def test_auroc_equals_sklearn_for_every_confidence(kind):
    skm = pytest.importorskip('sklearn.metrics')
    z, labels = random_model(500, seed=5, kind=kind)
    layer = {'logits': (), 'log_alpha': ('vacuity',), 'distance_logits': ('MDS', 'MMLS', 'MMLES')}[kind]
    names = CONFIDENCES + layer
    r = selective_report(z, labels, kind, confidences=names)
    correct = (z.softmax(1).argmax(1) == labels).numpy().astype(int)
    p = z.softmax(1).numpy()
    ps = np.sort(p, 1)
    raw = {'max-prob': p.max(1), 'entropy': (p * np.log(p)).sum(1),  # -H: higher = more confident
           'margin': ps[:, -1] - ps[:, -2]}
    for name in layer:  # the raw score, negated where lower = more confident (vacuity)
        raw[name] = raw_score(name, z).numpy() * (-1 if name == 'vacuity' else 1)
    for name in names:
        assert r[f'AUROC[{name}]'] == pytest.approx(skm.roc_auc_score(correct, raw[name]), abs=1e-12), name


def test_coverage_at_accuracy_equals_brute_force_with_ties():
    z, labels = random_model(240, seed=6)
    z = (z * 2).round() / 2  # coarse logits: many tie groups
    targets = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
    r = selective_report(z, labels, accuracy_targets=targets)
    conf = confidence_scores(z)
    correct = (z.softmax(1).argmax(1) == labels).numpy()
    for name in CONFIDENCES:
        for a in targets:
            want = brute_coverage_at_accuracy(conf[name].numpy(), correct, a)
            assert r[f'cov@acc{a:g}[{name}]'] == pytest.approx(want, abs=1e-15), (name, a)


def test_risk_at_coverage_equals_brute_force_with_ties():
    z, labels = random_model(230, seed=7)
    z = (z * 2).round() / 2
    covs = (0.01, 0.1, 0.3, 0.5, 0.77, 0.9, 1.0)
    r = selective_report(z, labels, coverages=covs)
    conf = confidence_scores(z)
    correct = (z.softmax(1).argmax(1) == labels).numpy()
    for name in CONFIDENCES:
        for v in covs:
            want = brute_risk_at_coverage(conf[name].numpy(), correct, v)
            assert r[f'risk@cov{v:g}[{name}]'] == pytest.approx(want, abs=1e-12), (name, v)


def test_e_aurc_is_zero_for_a_perfect_ordering():
    # every correct row more confident than every wrong one (in max-prob, entropy and margin alike)
    g = torch.Generator().manual_seed(8)
    c = torch.cat([0.6 + 0.39 * torch.rand(70, generator=g, dtype=D64), 0.15 + 0.4 * torch.rand(30, generator=g,
                                                                                                 dtype=D64)])
    correct = torch.cat([torch.ones(70), torch.zeros(30)])
    p, labels = rows_with_max_prob(c, correct, k=8, seed=9)
    r = selective_report(p, labels, 'probs')
    for name in CONFIDENCES:
        assert r[f'E-AURC[{name}]'] == pytest.approx(0.0, abs=1e-12)
        assert r[f'AUROC[{name}]'] == 1.0
        assert r[f'cov@acc0.99[{name}]'] == pytest.approx(0.7)  # all 70 correct first, the 71st breaks 0.99


def test_ood_auroc_equals_sklearn_and_fpr_brute_force():
    skm = pytest.importorskip('sklearn.metrics')
    z, labels = random_model(300, seed=10)
    ood = random_model(150, seed=11)[0] * 0.4  # flatter: less confident on average
    ood = torch.cat([ood, z[:20]])  # OOD rows equal to ID rows: ties across the two
    r = selective_report(z, labels, ood_z=ood, fpr_tpr=0.95)
    cid, cood = confidence_scores(z), confidence_scores(ood)
    for name in CONFIDENCES:
        s = np.concatenate([cid[name].numpy(), cood[name].numpy()])
        y = np.concatenate([np.ones(len(z)), np.zeros(len(ood))])
        assert r[f'OOD-AUROC[{name}]'] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        fpr, _ = brute_fpr_at_tpr(cid[name].numpy(), cood[name].numpy(), 0.95)
        assert r[f'OOD-FPR95[{name}]'] == pytest.approx(fpr, abs=1e-15)


@pytest.mark.parametrize('n_bins', [10, 15])
def test_ece_matches_torchmetrics_and_netcal(n_bins):
    tmf = pytest.importorskip('torchmetrics.functional.classification')
    netcal = pytest.importorskip('netcal.metrics')
    z, labels = random_model(1500, seed=12, dup=False)
    probs = z.softmax(1)
    r = selective_report(z, labels, n_bins=n_bins)
    ref = float(tmf.multiclass_calibration_error(probs.float(), labels, num_classes=5, n_bins=n_bins))
    assert r['ECE'] == pytest.approx(ref, abs=1e-6)
    assert r['ECE'] == pytest.approx(netcal.ECE(bins=n_bins).measure(probs.numpy(), labels.numpy()), abs=1e-9)


def test_ece_one_point_zero_bin_differs_from_torchmetrics_as_documented():
    """Confidence exactly 1.0: uqseg (and netcal) put it in the last bin (14/15, 1]; torchmetrics in a
    hidden extra bin (docs/metrics.md#binning). Rows (4 classes): p_top 1.0 wrong, 0.95 right, 0.5
    right (netcal needs three distinct labels to read the rows as multiclass)."""
    tmf = pytest.importorskip('torchmetrics.functional.classification')
    netcal = pytest.importorskip('netcal.metrics')
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.95, 0.05 / 3, 0.05 / 3, 0.05 / 3], [0.25, 0.125, 0.5, 0.125]],
                     dtype=D64)
    labels = torch.tensor([1, 0, 2])
    ece = selective_report(p, labels, 'probs', n_bins=15)['ECE']
    # uqseg: bin 14 {1.0 wrong, .95 right}: conf .975, acc .5, weight 2/3; bin 7 {.5 right}: gap .5, weight 1/3
    assert ece == pytest.approx(2 / 3 * 0.475 + 1 / 3 * 0.5, abs=1e-12)
    assert ece == pytest.approx(netcal.ECE(bins=15).measure(p.numpy(), labels.numpy()), abs=1e-9)
    # torchmetrics: 1.0 alone (gap 1), .95 alone (gap .05), .5 alone (gap .5): (1 + .05 + .5) / 3
    assert float(tmf.multiclass_calibration_error(p.float(), labels, num_classes=4, n_bins=15)) == pytest.approx(
        1.55 / 3, abs=1e-6)


def test_nll_and_brier_match_sklearn_and_numpy():
    skm = pytest.importorskip('sklearn.metrics')
    z, labels = random_model(700, k=6, seed=13, dup=False)
    r = selective_report(z, labels)
    p = z.softmax(1).numpy()
    assert r['NLL'] == pytest.approx(skm.log_loss(labels.numpy(), p, labels=list(range(6))), rel=1e-12)
    onehot = np.eye(6)[labels.numpy()]
    assert r['Brier'] == pytest.approx(((p - onehot) ** 2).sum(1).mean(), rel=1e-12)
    assert r['accuracy'] == pytest.approx(float((p.argmax(1) == labels.numpy()).mean()))


def test_unreachable_target_accuracy_gives_zero():
    # the most confident row is wrong: selective accuracy 1.0 is reached at no coverage
    p, labels = rows_with_max_prob([0.9, 0.8, 0.7], [0, 1, 1], k=3)
    r = selective_report(p, labels, 'probs', accuracy_targets=(1.0, 0.6))
    assert r['cov@acc1[max-prob]'] == 0.0
    assert r['cov@acc0.6[max-prob]'] == 1.0  # 2 of 3 right overall


# ---------------------------------------------------------------------------------- confidences
def test_confidence_scores_and_their_signs():
    z, _ = random_model(50, seed=14, dup=False, kind='log_alpha')
    c = confidence_scores(z, 'log_alpha', ('max-prob', 'entropy', 'margin', 'vacuity'))
    p = z.softmax(1)
    u = 5 / z.exp().sum(1)
    torch.testing.assert_close(c['max-prob'], p.max(1).values)
    torch.testing.assert_close(c['entropy'], 1 + (p * p.log()).sum(1) / math.log(5))
    top2 = p.topk(2, 1).values
    torch.testing.assert_close(c['margin'], top2[:, 0] - top2[:, 1])
    torch.testing.assert_close(c['vacuity'], 1 - u)  # higher = more confident
    for v in c.values():
        assert v.dtype == D64 and bool(((v >= 0) & (v <= 1)).all())
    # distance logits: 1 / (1 - x), order of the raw score (<= 0, higher = more confident)
    L, _ = random_model(50, seed=15, dup=False, kind='distance_logits')
    d = confidence_scores(L, 'distance_logits', ('MDS', 'MMLES'))
    torch.testing.assert_close(d['MDS'], 1 / (1 - L.max(1).values))
    assert torch.equal(torch.argsort(d['MMLES'], stable=True), torch.argsort(raw_score('MMLES', L), stable=True))
    # probs: the scores of p alone; numpy input; a (K, N) layout with dim=0
    assert set(PROB_SCORES) == {'max-prob', 'entropy', 'margin', 'MPS', 'ES'}
    cp = confidence_scores(p.numpy(), 'probs')
    torch.testing.assert_close(cp['margin'], c['margin'])
    ct = confidence_scores(z.T.contiguous(), 'log_alpha', ('margin', 'vacuity'), dim=0)
    torch.testing.assert_close(ct['vacuity'], c['vacuity'])


def test_own_layer_outputs_through_the_report():
    skm = pytest.importorskip('sklearn.metrics')
    g = torch.Generator().manual_seed(16)
    x = torch.randn(200, 8, generator=g)
    labels = torch.randint(0, 4, (200,), generator=g)
    for layer in (EDLLayer(8, 4), DisMaxLayer(8, 4)):
        with torch.no_grad():
            z = layer(x * 3)
        own = layer.default_score
        r = selective_report(z, labels, layer.output_kind, confidences=('max-prob', own))
        correct = (z.softmax(1).argmax(1) == labels).numpy().astype(int)
        raw = raw_score(own, z).numpy() * (-1 if own == 'vacuity' else 1)
        assert r[f'AUROC[{own}]'] == pytest.approx(skm.roc_auc_score(correct, raw), abs=1e-12)


# -------------------------------------------------------------------------------- curves and plots
def test_curves_and_reliability(tmp_path):
    z, labels = random_model(300, seed=17)
    r = selective_report(z, labels, curves=True, curve_points=50)
    conf = confidence_scores(z)
    correct = z.softmax(1).argmax(1) == labels
    for name in CONFIDENCES:
        cov, risk = F.risk_coverage_curve(conf[name], correct)
        cv = r['curves'][name]
        assert 2 <= cv['coverage'].numel() <= 50
        assert cv['coverage'][-1] == 1.0 and cv['risk'][-1] == pytest.approx(1 - r['accuracy'])
        idx = torch.searchsorted(cov, cv['coverage'])  # every point is a point of the full curve
        assert torch.equal(cov[idx], cv['coverage']) and torch.equal(risk[idx], cv['risk'])
    # few samples: the full curve
    full = selective_report(z[:20], labels[:20], curves=True)['curves']['margin']
    cov, risk = F.risk_coverage_curve(confidence_scores(z[:20])['margin'], correct[:20])
    assert torch.equal(full['coverage'], cov) and torch.equal(full['risk'], risk)
    rel = r['reliability']
    want = reliability(bin_sums(conf['max-prob'], correct, 15))
    for key in want:
        torch.testing.assert_close(rel[key], want[key], equal_nan=True)
    a = plot_risk_coverage_curves(r['curves'], str(tmp_path / 'rc.png'), title='t', error_rate=1 - r['accuracy'])
    b = plot_reliability_diagram(rel, str(tmp_path / 'rel.png'), count_label='images')
    assert_png(a)
    assert_png(b)


def test_empty_input_is_nan():
    r = selective_report(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert all(math.isnan(v) for v in r.values())


# ------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_naming_the_problem():
    z, labels = random_model(20, seed=18, dup=False)
    bad = z.clone()
    bad[3, 1] = float('nan')
    bad[7, 0] = float('inf')
    with pytest.raises(ValueError, match=r'z: 2 row\(s\) hold NaN/Inf values, the first is row 3'):
        selective_report(bad, labels)
    with pytest.raises(ValueError, match=r'ood_z: 2 row\(s\) hold NaN/Inf values, the first is row 3'):
        selective_report(z, labels, ood_z=bad)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 4\].*row 2 \(label 5\)'):
        selective_report(z, torch.tensor([0, 1, 5] + [0] * 17))
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 4\].*row 0 \(label -1\)'):
        selective_report(z, torch.full((20,), -1))
    with pytest.raises(ValueError, match='integer class indices'):
        selective_report(z, labels.double())
    p = z.softmax(1)
    p[4] *= 1.01
    with pytest.raises(ValueError, match=r"rows must sum to 1 \(tolerance 0.001\); 1 row\(s\) do not, the first is "
                                         r'row 4'):
        selective_report(p, labels, 'probs')
    with pytest.raises(ValueError, match=r'values must lie in \[0, 1\]'):
        selective_report(z, labels, 'probs')
    with pytest.raises(ValueError, match=r'labels must have shape \(20,\)'):
        selective_report(z, labels[:-1])
    with pytest.raises(ValueError, match=r'2-D \(N, K\)'):
        selective_report(z[:, 0], labels)
    with pytest.raises(ValueError, match='ood_z has 4 classes'):
        selective_report(z, labels, ood_z=z[:, :4])
    with pytest.raises(ValueError, match=r"confidences='vacuity' needs an EDL layer"):
        selective_report(z, labels, confidences=('vacuity',))
    with pytest.raises(ValueError, match=r"confidences='MDS' needs a DisMax.*kind='probs' outputs probs"):
        selective_report(z.softmax(1), labels, 'probs', confidences=('MDS',))
    with pytest.raises(ValueError, match="confidences='maxprob' is not a score"):
        confidence_scores(z, names=('maxprob',))
    with pytest.raises(ValueError, match='kind must be one of'):
        selective_report(z, labels, 'logit')
    with pytest.raises(ValueError, match='accuracy_targets must lie in'):
        selective_report(z, labels, accuracy_targets=(95,))
    with pytest.raises(ValueError, match='coverages must lie in'):
        selective_report(z, labels, coverages=(0,))
    with pytest.raises(ValueError, match='n_bins'):
        selective_report(z, labels, n_bins=0)
    with pytest.raises(ValueError, match='curve_points'):
        selective_report(z, labels, curves=True, curve_points=1)
