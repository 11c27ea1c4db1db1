"""uqseg eval-selective (uqseg.cli.eval_selective) on generated files of three models: every metric equals
the functional core / scikit-learn on the same arrays, the ranking follows it, the temperature-scaled rows use
fit_temperature on the seeded held-out part and share the raw rows' evaluation part, the CSV has
every key, the plots are written, and bad files or missing OOD sets are refused naming the file, as
are files whose labels differ (unless allowed), probabilities saved as logits (unless --kind says
so) and --fit-temperature on kinds temperature scaling does not apply to (log alpha, probs)."""
import csv
import math
import os.path as osp
import re

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import log_loss, roc_auc_score

from tests.helpers.files import assert_png
from uqseg.cli import eval_selective as ES
from uqseg.cli import invoke
from uqseg.core import functional as F
from uqseg.core.output_files import save_outputs
from uqseg.core.selective import selective_report
from uqseg.core.temperature import fit_temperature

pytestmark = pytest.mark.usefixtures('one_thread')
TARGETS, COVERAGES = (0.95, 0.99), (0.5, 0.8, 0.9, 0.95)


def run_tool(argv):
    """``uqseg eval-selective --debug *argv`` in this process: run()'s result, a refusal raised as is."""
    return invoke(['eval-selective', '--debug', *argv])


def _model(seed, strength, n=240, k=4, scale=2.0, n_ood=60):
    """A model's logits on the test samples of (n, k): every model of the same n and k has the
    same labels (a ranking compares models on the same samples)."""
    y = torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(1000 * k + n))
    g = torch.Generator().manual_seed(seed)
    z = scale * (torch.randn(n, k, generator=g) + strength * torch.nn.functional.one_hot(y, k))
    return z, y, scale * torch.randn(n_ood, k, generator=g)


@pytest.fixture(scope='module')
def three(tmp_path_factory):
    """Three models of different quality, with OOD outputs, in both containers; a fourth folder
    file of another class count."""
    root = tmp_path_factory.mktemp('outputs')
    out = {}
    for name, seed, strength, ext in (('weak', 1, 0.6, '.npz'), ('mid', 2, 1.4, '.pt'), ('strong', 3, 2.6, '.npz')):
        z, y, ood = _model(seed, strength)
        path = str(root / f'{name}{ext}')
        save_outputs(path, z, y, ood=ood, model=name)
        out[name] = (path, z, y, ood)
    return root, out


def _expected(z, y, ood=None, n_bins=15):
    """Every table metric of max-prob from the functional core / sklearn / numpy on the arrays."""
    p = z.double().softmax(1)
    conf, pred = p.max(1)
    correct = pred == y
    onehot = np.eye(z.shape[1])[y.numpy()]
    e = {'accuracy': float(correct.double().mean()), 'ECE': F.calibration_error(conf, correct, n_bins),
         'NLL': log_loss(y.numpy(), p.numpy(), labels=list(range(z.shape[1]))),
         'Brier': float(((p.numpy() - onehot) ** 2).sum(1).mean()),
         'AURC': F.aurc(conf, correct), 'E-AURC': F.eaurc(conf, correct),
         'AUROC': roc_auc_score(correct.numpy(), conf.numpy())}
    for a in TARGETS:
        e[f'cov@acc{a:g}'] = F.coverage_at_accuracy(conf, correct, a)
    for v in COVERAGES:
        e[f'risk@cov{v:g}'] = F.risk_at_coverage(conf, correct, v)
    if ood is not None:
        c_ood = ood.double().softmax(1).amax(1)
        both = torch.cat([conf, c_ood])
        is_id = torch.cat([torch.ones(len(conf)), torch.zeros(len(c_ood))]).bool()
        e['OOD-AUROC'] = roc_auc_score(is_id.numpy(), both.numpy())
        e['OOD-FPR95'] = F.fpr_at_tpr(both, is_id, 0.95)
    return e


def _check_row(row, expected, conf='max-prob'):
    # the files hold float32 logits, which the report exponentiates in float32 (sums in float64;
    # core.selective.row_statistics); the expected values come from a float64 softmax: agreement
    # to float32 precision
    for col, value in expected.items():
        key = col if col in ES.PLAIN_KEYS else f'{col}[{conf}]'
        assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (row['model'], key)


def test_three_models_reproduce_the_functional_values_and_their_ranking(three, capsys):
    root, models = three
    res = run_tool([str(root)])
    rows = res['rows']
    assert [r['model'] for r in rows] == sorted(models, key=lambda m: _expected(*models[m][1:3])['AURC'])
    assert [r['rank'] for r in rows] == [1, 2, 3]
    for r in rows:
        path, z, y, ood = models[r['model']]
        assert r['file'] == path and r['n'] == len(y) and r['n_ood'] == len(ood)
        _check_row(r, _expected(z, y, ood))
    out = capsys.readouterr().out
    for col in ('rank', 'model', 'accuracy', 'AURC', 'E-AURC', 'AUROC', 'ECE', 'NLL', 'Brier', 'cov@acc0.95',
                'cov@acc0.99', 'risk@cov0.8', 'OOD-AUROC', 'OOD-FPR95'):
        assert col in out.splitlines()[1]
    assert 'ranked by AURC (lower is better)' in out


@pytest.mark.parametrize('rank_by,lower', [('ECE', True), ('AUROC', False), ('cov@acc0.95', False),
                                           ('OOD-FPR95', True), ('risk@cov0.5', True)])
def test_rank_by_follows_the_metric_direction(three, rank_by, lower):
    root, models = three
    rows = run_tool([osp.join(str(root), '*'), '--rank-by', rank_by])['rows']
    values = [r[rank_by if rank_by in ES.PLAIN_KEYS else f'{rank_by}[max-prob]'] for r in rows]
    assert values == sorted(values, reverse=not lower)
    assert all(r['rank_key'] == (rank_by if rank_by == 'ECE' else f'{rank_by}[max-prob]') for r in rows)


def test_csv_has_every_key_of_every_report(three, tmp_path):
    root, models = three
    out = str(tmp_path / 'res.csv')
    run_tool([models['weak'][0], models['mid'][0], '--confidence', 'max-prob', 'entropy', 'margin', '--csv', out,
               '--accuracy-targets', '0.9', '--coverages', '0.7'])
    with open(out) as f:
        table = list(csv.DictReader(f))
    assert [r['model'] for r in table] == [r['model'] for r in sorted(table, key=lambda r: float(r['rank']))]
    for r in table:
        _, z, y, ood = models[r['model']]
        rep = selective_report(z, y, confidences=('max-prob', 'entropy', 'margin'), accuracy_targets=(0.9,),
                               coverages=(0.7,), ood_z=ood)
        assert set(rep) <= set(r), set(rep) - set(r)
        for key, value in rep.items():
            assert float(r[key]) == pytest.approx(value, rel=1e-12, nan_ok=True), key
        assert r['kind'] == 'logits' and r['confidence'] == 'max-prob' and int(r['n']) == len(y)
        # entropy and margin are the core's confidences, scored by the functional metrics
        p = z.double().softmax(1)
        correct = p.argmax(1) == y
        top2 = p.topk(2, 1).values
        assert float(r['AURC[margin]']) == pytest.approx(F.aurc(top2[:, 0] - top2[:, 1], correct), rel=1e-12)
        ent = 1 + torch.special.xlogy(p, p).sum(1) / math.log(4)
        assert float(r['AUROC[entropy]']) == pytest.approx(roc_auc_score(correct, ent), rel=1e-12)


def test_temperature_rows_fit_t_on_the_seeded_held_out_part(three, tmp_path, capsys):
    root, models = three
    res = run_tool([str(root), '--fit-temperature', '--calib-fraction', '0.25', '--seed', '3', '--plots',
                     str(tmp_path / 'plots'), '--csv', str(tmp_path / 'ts.csv')])
    rows = {r['model']: r for r in res['rows']}
    assert len(rows) == 6
    for name, (_, z, y, ood) in models.items():
        n = len(y)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(3))
        cal, ev = perm[:round(0.25 * n)], perm[round(0.25 * n):]
        t = float(fit_temperature(z[cal], y[cal], seed=3))
        raw, ts = rows[name], rows[f'{name}+TS']
        assert raw['T'] == 1.0 and ts['T'] == pytest.approx(t, rel=1e-9) and t != 1.0
        assert raw['n'] == ts['n'] == len(ev) and raw['n_calib'] == len(cal)
        _check_row(raw, _expected(z[ev], y[ev], ood))
        _check_row(ts, _expected(z[ev] / t, y[ev], ood / t))
        assert raw['accuracy'] == ts['accuracy']
    keys = ('AURC', 'AUROC', 'ECE')
    raw = [[rows[m][k if k == 'ECE' else f'{k}[max-prob]'] for m in models] for k in keys]
    ts = [[rows[f'{m}+TS'][k if k == 'ECE' else f'{k}[max-prob]'] for m in models] for k in keys]
    for k, a, b in zip(keys, raw, ts):
        assert res['spearman'][k] == pytest.approx(spearmanr(a, b)[0], nan_ok=True)
    assert 'Spearman rank correlation' in capsys.readouterr().out
    for name in ('risk_coverage', 'auroc_vs_accuracy', 'temperature_scaling'):
        assert_png(str(tmp_path / 'plots' / f'{name}.png'))
    with open(tmp_path / 'ts.csv') as f:
        assert {float(r['T']) for r in csv.DictReader(f)} == {1.0} | {rows[f'{m}+TS']['T'] for m in models}


def test_spearman_is_pearson_of_average_ranks():
    a, b = [0.3, 0.1, 0.1, 0.7, float('nan')], [0.2, 0.4, 0.1, 0.9, 0.5]
    assert ES.spearman(a, b) == pytest.approx(spearmanr(a[:4], b[:4])[0])
    ra = ES.average_ranks(np.array(a[:4]))
    assert ra.tolist() == [3.0, 1.5, 1.5, 4.0]
    assert math.isnan(ES.spearman([1, 2], [float('nan'), 1]))


def test_own_confidence_and_files_of_other_class_counts(tmp_path):
    g = torch.Generator().manual_seed(5)
    y = torch.randint(0, 3, (150,), generator=g)
    x = torch.randn(150, 3, generator=g) + 2 * torch.nn.functional.one_hot(y, 3)
    evidence = 3 * torch.nn.functional.softplus(x)
    z = torch.log1p(evidence)  # EDL log alpha, alpha = evidence + 1 >= 1
    edl, plain = str(tmp_path / 'edl.npz'), str(tmp_path / 'plain.pt')
    save_outputs(edl, z, y, kind='log_alpha')
    z2, y2, _ = _model(6, 1.0, k=6)
    save_outputs(plain, z2, y2)
    rows = {r['model']: r for r in run_tool([edl, plain, '--confidence', 'own', '--allow-different-labels'])['rows']}
    assert rows['edl']['confidence'] == 'vacuity' and rows['plain']['confidence'] == 'max-prob'
    assert rows['plain']['num_classes'] == 6 and rows['edl']['num_classes'] == 3
    vacuity = 3 / z.double().exp().sum(1)
    correct = z.argmax(1) == y
    assert rows['edl']['AURC[vacuity]'] == pytest.approx(F.aurc(1 - vacuity, correct), rel=1e-9)
    assert rows['edl']['AUROC[vacuity]'] == pytest.approx(roc_auc_score(correct, -vacuity), rel=1e-9)
    _check_row(rows['plain'], {k: v for k, v in _expected(z2, y2).items()})
    # ranked on each file's own score, beside max-prob
    rows = run_tool([edl, plain, '--confidence', 'max-prob', 'own', '--rank-by', 'AURC[own]',
                      '--allow-different-labels'])['rows']
    keys = {r['model']: r['rank_key'] for r in rows}
    assert keys == {'edl': 'AURC[vacuity]', 'plain': 'AURC[max-prob]'}
    assert [r['model'] for r in rows] == sorted(keys, key=lambda m: next(r[keys[m]] for r in rows if r['model'] == m))


def test_bad_files_stop_the_run_naming_the_file_or_are_skipped(three, tmp_path, capsys):
    root, models = three
    z, y, _ = _model(9, 1.0)
    zn, yn = z.numpy(), y.numpy()
    nan = zn.copy()
    nan[[4, 8]] = np.nan
    high = yn.copy()
    high[10] = 7
    p = z.softmax(1).numpy()
    p[0] *= 0.9
    bad = {'lengths.npz': dict(logits=zn, labels=yn[:-3]), 'nan.npz': dict(logits=nan, labels=yn),
           'labels.npz': dict(logits=zn, labels=high), 'probs.npz': dict(probs=p, labels=yn),
           'missing.npz': dict(labels=yn)}
    messages = {'lengths.npz': 'labels has 237', 'nan.npz': r'2 row\(s\) hold NaN/Inf values, the first is row 4',
                'labels.npz': r'row 10 \(label 7\)', 'probs.npz': 'rows must sum to 1',
                'missing.npz': "missing key 'logits'"}
    for name, arrays in bad.items():
        path = str(tmp_path / name)
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=messages[name]) as err:
            run_tool([models['weak'][0], path])
        assert path in str(err.value)
    capsys.readouterr()
    res = run_tool([models['weak'][0], str(tmp_path / 'nan.npz'), models['strong'][0], '--skip-bad'])
    assert [r['model'] for r in res['rows']] == ['strong', 'weak'] and res['skipped'][0][0].endswith('nan.npz')
    err = capsys.readouterr().err  # a plain warning line, not a file:line warning dump
    assert re.search(r'^warning: skipped .*nan\.npz: .*2 row\(s\) hold NaN/Inf', err, re.M), err
    assert 'UserWarning' not in err and 'warning: 1 of 3 file(s) skipped' in err
    with pytest.raises(FileNotFoundError, match='nowhere.npz'):
        run_tool([str(tmp_path / 'nowhere.npz')])
    with pytest.raises(ValueError, match='matches no file'):
        run_tool([str(tmp_path / 'none*.pt')])


def test_missing_ood_and_probabilities_with_temperature_are_refused(three, tmp_path):
    root, models = three
    z, y, _ = _model(11, 1.0)
    no_ood, probs = str(tmp_path / 'no_ood.npz'), str(tmp_path / 'probs.npz')
    save_outputs(no_ood, z, y)
    save_outputs(probs, z.double().softmax(1), y, kind='probs')
    with pytest.raises(ValueError, match=r'no_ood.npz: --require-ood needs OOD outputs'):
        run_tool([models['mid'][0], no_ood, '--require-ood'])
    with pytest.raises(ValueError, match=r'no_ood.npz: --rank-by OOD-AUROC needs OOD outputs'):
        run_tool([models['mid'][0], no_ood, '--rank-by', 'OOD-AUROC'])
    rows = run_tool([models['mid'][0], no_ood])['rows']  # without the requirement: fine, no OOD keys
    assert 'OOD-AUROC[max-prob]' not in {r['model']: r for r in rows}['no_ood']
    with pytest.raises(ValueError, match=r"probs.npz: --fit-temperature: the file holds probabilities \(kind "
                                         r"'probs'\), not logits; temperature scaling divides logits"):
        run_tool([probs, '--fit-temperature'])
    _check_row(run_tool([probs])['rows'][0], _expected(z, y))


def test_bad_options_are_refused_before_any_file_is_read(three):
    root, _ = three
    with pytest.raises(ValueError, match="--rank-by 'AUPR'"):
        run_tool([str(root), '--rank-by', 'AUPR'])
    with pytest.raises(ValueError, match="--confidence 'maxprob'"):
        run_tool([str(root), '--confidence', 'maxprob'])
    with pytest.raises(ValueError, match="confidence 'entropy' is not scored"):
        run_tool([str(root), '--rank-by', 'AURC[entropy]'])
    with pytest.raises(ValueError, match='--calib-fraction must lie in'):
        run_tool([str(root), '--fit-temperature', '--calib-fraction', '1.0'])


def test_own_confidence_reads_the_files_score(tmp_path):
    """An IsoMax+ file carries its own score (MDS): ``--confidence own`` and ``--rank-by 'AURC[own]'``
    use it, not the distance kind's default (MMLES)."""
    from uqseg.core.functional import aurc
    from uqseg.core.output_files import save_outputs
    from uqseg.core.scores import raw_score, score_confidence
    g = torch.Generator().manual_seed(3)
    z = -torch.rand(200, 5, generator=g) * 4
    y = torch.randint(0, 5, (200,), generator=g)
    path = save_outputs(str(tmp_path / 'iso.npz'), z, y, kind='distance_logits', score='MDS')
    out = run_tool([path, '--confidence', 'own', '--rank-by', 'AURC[own]'])
    row = out['rows'][0]
    assert row['confidence'] == 'MDS' and 'AURC[MMLES]' not in row
    conf = score_confidence('MDS', raw_score('MDS', z.double()), 5)
    assert row['AURC[MDS]'] == pytest.approx(aurc(conf, z.argmax(1) == y), rel=1e-9)


def test_files_whose_labels_differ_are_refused_unless_allowed(three, tmp_path):
    """A ranking compares models on the same samples: another file's labels must equal the first's
    (length and order); the refusal names both files and the first differing row."""
    root, models = three
    weak, _, y, _ = models['weak']
    esc = re.escape(weak)
    z, _, _ = _model(12, 1.0)
    changed, shuffled = y.clone(), y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    changed[[17, 90]] = (y[[17, 90]] + 1) % 4
    files = {'changed': (z, changed), 'shuffled': (z, shuffled), 'shorter': (z[:-1], y[:-1])}
    for name, (zz, yy) in files.items():
        save_outputs(str(tmp_path / f'{name}.npz'), zz, yy)
    first = int((shuffled != y).nonzero()[0, 0])
    messages = {'changed': rf'changed.npz: its labels differ from those of {esc} in 2 of 240 rows, the first is '
                           rf'row 17 \(label {int(changed[17])}, there {int(y[17])}\); a ranking compares models on '
                           'the same samples; give --allow-different-labels',
                'shuffled': rf'shuffled.npz: its labels differ from those of {esc} in '
                            rf'{int((shuffled != y).sum())} of 240 rows, the first is row {first} ',
                'shorter': rf'shorter.npz: holds 239 labels, {esc} 240; a ranking compares models on the same'}
    for name, message in messages.items():
        for extra in ([], ['--fit-temperature']):
            with pytest.raises(ValueError, match=message):
                run_tool([weak, str(tmp_path / f'{name}.npz'), *extra])
    # asked for: each row is scored on its own file's samples
    rows = {r['model']: r for r in run_tool([weak, str(tmp_path / 'changed.npz'), '--allow-different-labels'])['rows']}
    _check_row(rows['changed'], _expected(z, changed))
    _check_row(rows['weak'], _expected(*models['weak'][1:]))
    # the same labels in every file: no refusal (the three models of the fixture)
    assert len(run_tool([str(root)])['rows']) == 3


def test_probabilities_saved_as_logits_are_refused_unless_the_kind_is_given(three, tmp_path):
    root, models = three
    z, y, _ = _model(13, 1.0)
    p = z.softmax(1)
    path = save_outputs(str(tmp_path / 'softmaxed.npz'), p, y, kind='logits')
    with pytest.raises(ValueError, match=r"softmaxed.npz: every row of 'logits' \(kind 'logits'\) lies in \[0, 1\] "
                                         r"and sums to 1.*uqseg eval-selective --kind logits"):
        run_tool([models['weak'][0], path])
    rows = {r['model']: r for r in run_tool([models['weak'][0], path, '--kind', 'logits'])['rows']}
    _check_row(rows['softmaxed'], _expected(p, y))  # stated as logits: softmax(p), as asked
    edl = save_outputs(str(tmp_path / 'edl.npz'), torch.log1p(z.exp()), y, kind='log_alpha')
    with pytest.raises(ValueError, match=r"edl.npz: the file's kind is 'log_alpha', but kind 'logits' was stated"):
        run_tool([path, edl, '--kind', 'logits'])


def test_temperature_scaling_follows_the_models_rule(three, tmp_path, capsys):
    """--fit-temperature refuses log alpha as TemperatureScaledImageClassifier refuses an EDL head
    (uqseg.core.temperature_kinds), and scales distance logits as the model does a DisMax head."""
    root, models = three
    z, y, _ = _model(14, 1.0)
    edl = save_outputs(str(tmp_path / 'edl.npz'), torch.log1p(torch.nn.functional.softplus(z)), y, kind='log_alpha')
    with pytest.raises(ValueError, match=r"edl.npz: --fit-temperature: the file holds log alpha \(evidential, kind "
                                         r"'log_alpha'\), not logits; temperature scaling divides logits"):
        run_tool([models['weak'][0], edl, '--fit-temperature'])
    assert len(run_tool([models['weak'][0], edl])['rows']) == 2  # without TS: scored
    res = run_tool([models['weak'][0], edl, '--fit-temperature', '--skip-bad'])
    assert re.search(r'^warning: skipped .*edl\.npz: .*--fit-temperature', capsys.readouterr().err, re.M)
    assert {r['model'] for r in res['rows']} == {'weak', 'weak+TS'}
    dist = -torch.nn.functional.softplus(-z) - 1  # distance logits <= 0
    iso = save_outputs(str(tmp_path / 'iso.npz'), dist, y, kind='distance_logits')
    rows = {r['model']: r for r in run_tool([iso, '--fit-temperature', '--seed', '2'])['rows']}
    n = len(y)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(2))
    cal, ev = perm[:round(0.1 * n)], perm[round(0.1 * n):]
    t = float(fit_temperature(dist[cal], y[cal], seed=2))
    assert rows['iso+TS']['T'] == pytest.approx(t, rel=1e-9)
    _check_row(rows['iso+TS'], _expected(dist[ev] / t, y[ev]))


def test_clamped_nll_of_probabilities_is_said(tmp_path, capsys):
    """Issue 19, item 3: logits give the exact NLL; a probabilities file whose p_y underflows is
    clamped at 1e-12, and the tool says so under its table (and in the row's NLL-clamped)."""
    z = torch.tensor([[0.0, -80.0, -5.0], [3.0, 2.0, 1.0], [1.0, 0.0, 4.0]], dtype=torch.float64)
    y = torch.tensor([1, 2, 2])
    logits, probs = str(tmp_path / 'logits.npz'), str(tmp_path / 'probs.npz')
    save_outputs(logits, z, y, kind='logits')
    save_outputs(probs, z.softmax(1), y, kind='probs')
    rows = {r['model']: r for r in run_tool([logits, probs])['rows']}
    out = capsys.readouterr().out
    exact = float(-torch.log_softmax(z, 1).gather(1, y[:, None]).mean())
    assert rows['logits']['NLL'] == pytest.approx(exact, rel=1e-12) and 'NLL-clamped' not in rows['logits']
    assert rows['probs']['NLL-clamped'] == 1 and rows['probs']['NLL'] < exact - 15
    assert 'note: probs: NLL clamps p_y at 1e-12 in 1 row(s)' in out and 'note: logits' not in out
