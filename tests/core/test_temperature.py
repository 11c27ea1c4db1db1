"""Temperature fitting (uqseg.core.temperature): it recovers a known temperature from logits of a
calibrated model that were then scaled, never raises the NLL of the fitting data, and refuses
empty or broken data; its optimum matches a float64 golden-section search written here, also below
0.05 and above 20 (where the old clamped fit stopped), and a reached bound is flagged and warned
about (one T, per class, one channel, ECE); the streaming subsample is uniform, seeded and strict
about its input; check_temperature refuses non-positive values; calibration_summary agrees with
scikit-learn."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

from uqseg.core.temperature import (
    DEFAULT_BOUNDS,
    StreamingSubsample,
    apply_temperature,
    calibration_summary,
    check_bounds,
    check_temperature,
    fit_temperature,
    fit_temperature_result,
    temperature_nll,
)


def _calibrated(n=40000, k=5, seed=0):
    """Logits of a calibrated model: labels drawn from softmax(z)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g, dtype=torch.float64) * 2.5
    y = torch.multinomial(z.softmax(1), 1, generator=g)[:, 0]
    return z, y


@pytest.mark.parametrize('scale', [0.5, 2.0])
def test_nll_fit_recovers_the_temperature_of_scaled_calibrated_logits(scale):
    z, y = _calibrated()
    t = fit_temperature(z * scale, y)  # the calibrating temperature of z * s is s
    assert float(t) == pytest.approx(scale, rel=0.03)


def test_binary_one_channel_fit_recovers_the_temperature():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(20000, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(20000, generator=g, dtype=torch.float64) < torch.sigmoid(z)).long()
    assert float(fit_temperature(3.0 * z, y)) == pytest.approx(3.0, rel=0.03)
    assert float(fit_temperature(3.0 * z, y, method='ece')) == pytest.approx(3.0, rel=0.15)


def test_nll_after_fitting_is_not_above_nll_at_t1_and_ece_falls():
    z, y = _calibrated(seed=2)
    for s in (0.4, 1.0, 3.0):
        t = fit_temperature(z * s, y)
        assert temperature_nll(z * s, y, t) <= temperature_nll(z * s, y, 1.0) + 1e-12
    zs, y = z[:10000] * 3.0, y[:10000]
    t = fit_temperature(zs, y, method='ece')
    p_before, p_after = zs.softmax(1), apply_temperature(zs, t).softmax(1)
    e_before = multiclass_calibration_error(p_before.float(), y, num_classes=5, n_bins=15)  # torchmetrics
    e_after = multiclass_calibration_error(p_after.float(), y, num_classes=5, n_bins=15)
    assert e_after < e_before / 3 and float(t) == pytest.approx(3.0, rel=0.15)


def test_per_class_temperatures_recover_per_class_scales():
    z, y = _calibrated(n=60000, k=3, seed=3)
    scales = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    t = fit_temperature(z * scales, y, per_class=True)
    assert t.shape == (3,)
    # vector scaling has one redundant direction only when the classes are symmetric: check the fit is
    # at least as good as the true scales
    assert temperature_nll(z * scales, y, t) <= temperature_nll(z * scales, y, scales) + 1e-6


def test_ignore_index_rows_are_dropped_and_subsampling_is_seeded():
    z, y = _calibrated(n=5000, seed=4)
    y2 = y.clone()
    y2[:1000] = 255
    assert float(fit_temperature(z[1000:], y[1000:])) == pytest.approx(float(fit_temperature(z, y2, ignore_index=255)))
    a = fit_temperature(z, y, max_samples=2000, seed=7)
    assert torch.equal(a, fit_temperature(z, y, max_samples=2000, seed=7))
    assert not torch.equal(a, fit_temperature(z, y, max_samples=2000, seed=8))


def test_bad_data_is_refused_with_a_clear_error():
    z, y = _calibrated(n=10)
    with pytest.raises(ValueError, match='no valid sample'):
        fit_temperature(z[:0], y[:0])
    with pytest.raises(ValueError, match='every label is ignore_index=255'):
        fit_temperature(z, torch.full_like(y, 255), ignore_index=255)
    bad = z.clone()
    bad[3, 1] = float('nan')
    bad[4, 0] = float('inf')
    with pytest.raises(ValueError, match='2 NaN/Inf'):
        fit_temperature(bad, y)
    with pytest.raises(ValueError, match='labels must be 0..4'):
        fit_temperature(z, y + 5)
    with pytest.raises(ValueError, match="method must be 'nll' or 'ece'"):
        fit_temperature(z, y, method='brier')


# ---------------------------------------------------------------------------------------------
# the optimum against an independent float64 search, and the bounds
# ---------------------------------------------------------------------------------------------
def _reference_nll(z, y, t):
    """Mean NLL of softmax(z / t) (sigmoid for one channel), float64, from the definition:
    logsumexp(z / t) - z_y / t per row; one channel: softplus(z / t) - y z / t."""
    zt = z.double() / t
    if zt.dim() == 1:
        return float((F.softplus(zt) - y.double() * zt).mean())
    return float((torch.logsumexp(zt, 1) - zt.gather(1, y[:, None])[:, 0]).mean())


def _golden_optimum(z, y):
    """argmin over T of the reference NLL: golden-section search on log T in [log 1e-4, log 1e4]
    down to 1e-10 (the NLL is unimodal in log T: convex in 1 / T)."""
    a, b, g = math.log(1e-4), math.log(1e4), (math.sqrt(5) - 1) / 2
    while b - a > 1e-10:
        c, d = b - g * (b - a), a + g * (b - a)
        if _reference_nll(z, y, math.exp(c)) <= _reference_nll(z, y, math.exp(d)):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)


def _binary(n=20000, seed=1):
    """One-channel logits of a calibrated model: labels drawn from sigmoid(z)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator=g, dtype=torch.float64) * 3
    return z, (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(z)).long()


@pytest.mark.parametrize('binary', [False, True], ids=['softmax', 'one-channel'])
@pytest.mark.parametrize('scale', [0.02, 0.0667, 40.0])
def test_nll_fit_finds_the_optimum_beyond_the_old_bounds(scale, binary):
    """Optima below 0.05 (DisMax-like: 0.0667, 0.02) and above 20 (40), where the clamped fit
    stopped at 0.05 / 20: the fit matches a float64 golden-section search, no bound reached."""
    z, y = _binary() if binary else _calibrated(n=20000, seed=5)
    z = z * scale
    expected = _golden_optimum(z, y)
    assert expected == pytest.approx(scale, rel=0.05)  # the data is as intended
    fit = fit_temperature_result(z, y)
    assert float(fit.temperature) == pytest.approx(expected, rel=1e-5)
    assert fit.temperature.dtype == torch.float64 and fit.temperature.dim() == 0
    assert fit.at_bound == (None,) and fit.bound_reached is None and fit.message() is None
    assert fit.bounds == DEFAULT_BOUNDS and fit.record() == dict(bounds=list(DEFAULT_BOUNDS), bound_reached=None)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no warning inside the bounds
        assert torch.equal(fit_temperature(z, y), fit.temperature)
    # float32 logits (what the tools collect) give the optimum of those float32 values
    assert float(fit_temperature(z.float(), y)) == pytest.approx(_golden_optimum(z.float(), y), rel=1e-5)


@pytest.mark.parametrize('binary', [False, True], ids=['softmax', 'one-channel'])
@pytest.mark.parametrize('scale,side,bound', [(0.02, 'lower', 0.05), (40.0, 'upper', 20.0)])
def test_an_optimum_outside_the_bounds_stops_at_the_bound_flagged_and_warned(scale, side, bound, binary):
    z, y = _binary() if binary else _calibrated(n=20000, seed=5)
    z = z * scale
    fit = fit_temperature_result(z, y, bounds=(0.05, 20))
    assert float(fit.temperature) == bound  # the bound exactly, and the nearest point to the optimum
    assert fit.at_bound == (side,) and fit.bound_reached == side
    assert fit.record() == dict(bounds=[0.05, 20.0], bound_reached=side)
    inside = 0.05 * 1.01 if side == 'lower' else 20 / 1.01
    assert _reference_nll(z, y, bound) < _reference_nll(z, y, inside)  # the NLL falls towards the bound
    with pytest.warns(UserWarning, match=f'T stopped at the {side} bound {bound:g}: the NLL still falls beyond it'):
        t = fit_temperature(z, y, bounds=(0.05, 20))
    assert float(t) == bound


def test_no_finite_optimum_is_flagged_at_the_bound():
    """Separable rows (the NLL falls as T -> 0) and one-channel logits that carry no information on
    the labels (it falls as T -> inf; where public binary temperature scaling diverges)."""
    z, _ = _calibrated(n=2000, seed=6)
    fit = fit_temperature_result(z, z.argmax(1))  # every row right: separable
    assert fit.at_bound == ('lower',) and float(fit.temperature) == DEFAULT_BOUNDS[0]
    g = torch.Generator().manual_seed(7)
    zb = torch.randn(4000, generator=g, dtype=torch.float64) * 3
    yb = (zb < 0).long()  # every sign wrong: the best sigmoid(z / T) is 1/2, T -> inf
    fit = fit_temperature_result(zb, yb, bounds=(0.1, 50))
    assert fit.at_bound == ('upper',) and float(fit.temperature) == 50
    assert 'logits that carry no information' in fit.message()
    # rows without information (every logit equal): a flat NLL, no bound, T = 1
    flat = fit_temperature_result(torch.zeros(100, 3), torch.arange(100) % 3)
    assert flat.at_bound == (None,) and float(flat.temperature) == 1.0


def test_bounds_that_exclude_one_start_inside_and_find_an_interior_optimum():
    z, y = _calibrated(n=20000, seed=8)
    z = z * 0.3
    fit = fit_temperature_result(z, y, bounds=(0.1, 0.5))
    assert fit.at_bound == (None,) and float(fit.temperature) == pytest.approx(_golden_optimum(z, y), rel=1e-5)


def _per_class_reference(z, y, t, k):
    """argmin over T_k of the reference NLL with the other temperatures of ``t`` held."""
    def nll_k(tk):
        tt = t.clone()
        tt[k] = tk
        return _reference_nll(z / tt, y, 1.0)
    a, b, g = math.log(1e-4), math.log(1e4), (math.sqrt(5) - 1) / 2
    while b - a > 1e-10:
        c, d = b - g * (b - a), a + g * (b - a)
        a, b = (a, d) if nll_k(math.exp(c)) <= nll_k(math.exp(d)) else (c, b)
    return math.exp((a + b) / 2), nll_k


def test_per_class_fit_holds_classes_at_their_bounds_and_optimises_the_others():
    z, y = _calibrated(n=30000, k=3, seed=9)
    zs = z * torch.tensor([0.02, 1.0, 40.0], dtype=torch.float64)
    free = fit_temperature_result(zs, y, per_class=True)  # default bounds: every class inside
    assert free.at_bound == (None, None, None) and free.record()['at_bound'] == [None, None, None]
    for k in range(3):  # each T_k optimal given the others (the NLL is convex in the 1 / T_k)
        assert float(free.temperature[k]) == pytest.approx(_per_class_reference(zs, y, free.temperature, k)[0],
                                                           rel=1e-4)
    fit = fit_temperature_result(zs, y, per_class=True, bounds=(0.05, 20))
    assert fit.at_bound == ('lower', None, 'upper') and fit.bound_reached == 'both'
    assert fit.record() == dict(bounds=[0.05, 20.0], bound_reached='both', at_bound=['lower', None, 'upper'])
    t = fit.temperature
    assert float(t[0]) == 0.05 and float(t[2]) == 20.0
    # the free class is optimal given the held ones, and the held ones want to go beyond their bounds
    t1, _ = _per_class_reference(zs, y, t, 1)
    assert float(t[1]) == pytest.approx(t1, rel=1e-4)
    _, nll0 = _per_class_reference(zs, y, t, 0)
    _, nll2 = _per_class_reference(zs, y, t, 2)
    assert nll0(0.05) < nll0(0.05 * 1.01) and nll2(20.0) < nll2(20.0 / 1.01)
    with pytest.warns(UserWarning, match=r'T of class\(es\) \[0\] stopped at the lower bound 0.05.*'
                                         r'T of class\(es\) \[2\] stopped at the upper bound 20'):
        fit_temperature(zs, y, per_class=True, bounds=(0.05, 20))


def test_ece_fit_reports_a_grid_end():
    z, y = _calibrated(n=10000, seed=10)
    low = fit_temperature_result(z * 0.02, y, method='ece', bounds=(0.05, 20))
    assert low.at_bound == ('lower',) and low.bound_reached == 'lower' and low.method == 'ece'
    assert 0.05 <= float(low.temperature) < 0.05 * 1.2  # within the grid's first step
    with pytest.warns(UserWarning, match='lower bound 0.05: the ECE still falls beyond it'):
        fit_temperature(z * 0.02, y, method='ece', bounds=(0.05, 20))
    assert fit_temperature_result(z * 40, y, method='ece', bounds=(0.05, 20)).at_bound == ('upper',)
    inside = fit_temperature_result(z * 0.02, y, method='ece')  # default bounds reach below 0.02
    assert inside.at_bound == (None,) and float(inside.temperature) == pytest.approx(0.02, rel=0.15)


@pytest.mark.parametrize('bad', [(0, 1), (-1, 1), (2, 1), (1, 1), (float('nan'), 1), (1, float('inf')), (1,),
                                 (1, 2, 3), 'ab', None])
def test_bad_bounds_are_refused_naming_them(bad):
    with pytest.raises(ValueError, match='--my-bounds must be'):
        check_bounds(bad, '--my-bounds')
    z, y = _calibrated(n=10)
    with pytest.raises(ValueError, match='bounds must be'):
        fit_temperature(z, y, bounds=bad)


def test_check_bounds_returns_floats():
    assert check_bounds([1, 3]) == (1.0, 3.0) and check_bounds(DEFAULT_BOUNDS) == DEFAULT_BOUNDS


def test_apply_temperature_divides_the_class_dimension():
    z = torch.randn(2, 3, 4, 4)
    t = torch.tensor([1.0, 2.0, 4.0])
    out = apply_temperature(z, t, dim=1)
    assert torch.allclose(out[:, 2], z[:, 2] / 4) and torch.allclose(apply_temperature(z, 2.0), z / 2)
    assert torch.allclose(F.softmax(apply_temperature(z, 1.0), 1), F.softmax(z, 1))


# ---------------------------------------------------------------------------------------------
# StreamingSubsample: a seeded uniform subsample of a stream of (logits, labels) batches
# ---------------------------------------------------------------------------------------------
def _indexed_stream(n, k=3, chunk=7, seed=0):
    """``n`` rows whose channel 0 is the row's index in the stream (so a kept row names its origin),
    in batches of ``chunk`` rows; labels ``index % k``."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(n, dtype=torch.float32)
    z = torch.cat([idx[:, None], torch.randn(n, k - 1, generator=g)], 1)
    y = torch.arange(n) % k
    return z, y, [(z[i:i + chunk], y[i:i + chunk]) for i in range(0, n, chunk)]


def _stream(sub, batches):
    for z, y in batches:
        sub.update(z, y)
    return sub


def _sorted_rows(z, y):
    order = torch.argsort(z[:, 0])
    return z[order], y[order]


def test_streaming_subsample_keeps_every_row_below_capacity():
    z, y, batches = _indexed_stream(50, chunk=7)
    sub = _stream(StreamingSubsample(capacity=100, seed=3), batches)
    kz, ky = sub.rows()
    assert sub.seen == 50 and kz.dtype == torch.float32 and ky.dtype == torch.long
    kz, ky = _sorted_rows(kz, ky)
    assert torch.equal(kz, z) and torch.equal(ky, y)
    # exactly at capacity too
    kz, ky = _stream(StreamingSubsample(capacity=50, seed=3), batches).rows()
    assert torch.equal(_sorted_rows(kz, ky)[0], z)


def test_streaming_subsample_keeps_capacity_distinct_rows_of_the_stream_seeded():
    z, y, batches = _indexed_stream(500, chunk=7)
    kz, ky = _stream(StreamingSubsample(capacity=60, seed=1), batches).rows()
    assert kz.shape == (60, 3) and ky.shape == (60,)
    idx = kz[:, 0].long()
    assert idx.unique().numel() == 60  # no row twice
    assert torch.equal(kz, z[idx]) and torch.equal(ky, y[idx])  # each row is a streamed row, intact
    again, _ = _stream(StreamingSubsample(capacity=60, seed=1), batches).rows()
    other, _ = _stream(StreamingSubsample(capacity=60, seed=2), batches).rows()
    assert set(again[:, 0].long().tolist()) == set(idx.tolist())
    assert set(other[:, 0].long().tolist()) != set(idx.tolist())


def test_streaming_subsample_is_uniform_over_the_stream():
    n, cap = 100_000, 10_000
    idx = torch.arange(n, dtype=torch.float32)
    sub = StreamingSubsample(capacity=cap, seed=0)
    for i in range(0, n, 7000):  # one-channel rows: the logit is the index
        sub.update(idx[i:i + 7000], torch.zeros(min(7000, n - i), dtype=torch.long))
    kz, _ = sub.rows()
    assert kz.shape == (cap,) and kz.unique().numel() == cap and sub.seen == n
    assert float((kz < n / 2).double().mean()) == pytest.approx(0.5, abs=0.03)
    # every tenth of the stream (first chunks, last chunk, chunk boundaries) holds about a tenth
    tenths = torch.bincount((kz // (n // 10)).long(), minlength=10).double() / cap
    assert torch.all((tenths - 0.1).abs() < 0.015), tenths


def test_streaming_subsample_drops_ignored_rows_and_counts_valid_ones():
    z, y, _ = _indexed_stream(40, chunk=40)
    y = y.clone()
    y[::4] = 255
    sub = StreamingSubsample(capacity=1000, ignore_index=255)
    sub.update(z[:25], y[:25])
    sub.update(z[25:], y[25:])
    kz, ky = _sorted_rows(*sub.rows())
    valid = y != 255
    assert sub.seen == int(valid.sum()) == 30
    assert torch.equal(kz, z[valid]) and torch.equal(ky, y[valid]) and not (ky == 255).any()
    # without ignore_index the label is just a value
    sub2 = StreamingSubsample(capacity=1000)
    sub2.update(z, y)
    assert sub2.seen == 40


def test_streaming_subsample_refuses_non_finite_logits_even_if_they_would_be_dropped():
    for bad in (float('nan'), float('inf')):
        sub = StreamingSubsample(capacity=1, seed=0)
        sub.update(torch.randn(100, 3), torch.zeros(100, dtype=torch.long))
        z = torch.randn(1000, 3)
        z[517, 2] = bad  # with capacity 1 this row is almost surely not kept
        with pytest.raises(ValueError, match='1 NaN/Inf'):
            sub.update(z, torch.zeros(1000, dtype=torch.long))


def test_streaming_subsample_refuses_changing_channels_and_bad_shapes():
    sub = StreamingSubsample(capacity=10)
    sub.update(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match='same channels'):
        sub.update(torch.randn(5, 4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match='same channels'):
        sub.update(torch.randn(5), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError):
        sub.update(torch.randn(5, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        sub.update(torch.randn(2, 3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match='capacity'):
        StreamingSubsample(capacity=0)


def test_streaming_subsample_one_channel_logits():
    z = torch.arange(30, dtype=torch.float32)
    y = (torch.arange(30) % 2)
    sub = StreamingSubsample(capacity=12, seed=5)
    for i in range(0, 30, 4):
        sub.update(z[i:i + 4], y[i:i + 4])
    kz, ky = sub.rows()
    assert kz.shape == (12,) and ky.shape == (12,) and sub.seen == 30
    assert kz.unique().numel() == 12 and torch.equal(ky, y[kz.long()])
    # the subsample feeds fit_temperature (labels i % 2 say nothing of the logit i: T at the upper bound)
    with pytest.warns(UserWarning, match='upper bound'):
        assert torch.isfinite(fit_temperature(kz / 10 - 1.5, ky))


def test_streaming_subsample_empty_before_any_update():
    z, y = StreamingSubsample().rows()
    assert z.numel() == 0 and y.numel() == 0 and y.dtype == torch.long


# ---------------------------------------------------------------------------------------------
# check_temperature
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('bad', [0, 0.0, -1.0, float('nan'), float('inf'), [], [1.0, 0.0], [2.0, float('nan')],
                                 [[1.0, 2.0]]])
def test_check_temperature_refuses_non_positive_non_finite_and_empty(bad):
    with pytest.raises(ValueError, match='my_temp'):
        check_temperature(bad, owner='my_temp')


def test_check_temperature_accepts_numbers_lists_and_tensors():
    t = check_temperature(2.5)
    assert t.dtype == torch.float64 and t.dim() == 0 and float(t) == 2.5
    v = check_temperature([0.5, 1.0, 3.0])
    assert v.dtype == torch.float64 and torch.equal(v, torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64))
    assert torch.equal(check_temperature(torch.tensor([0.25, 1e-3])),
                       torch.tensor([0.25, 1e-3]).double())  # float32 in, float64 out


# ---------------------------------------------------------------------------------------------
# calibration_summary against scikit-learn / torchmetrics / calibration_error
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('temperature', [1.0, 2.0])
def test_calibration_summary_multiclass_matches_sklearn(temperature):
    from sklearn.metrics import accuracy_score, log_loss

    from uqseg.core.functional import calibration_error
    z, y = _calibrated(n=3000, k=4, seed=11)
    z = z * 1.5  # overconfident, so ECE is well above 0
    p = torch.softmax(z / temperature, 1)  # computed here, independently of apply_temperature
    out = calibration_summary(z, y, temperature=temperature)
    assert set(out) == {'accuracy', 'ECE', 'NLL', 'Brier'}
    assert out['accuracy'] == pytest.approx(accuracy_score(y.numpy(), p.argmax(1).numpy()), abs=1e-12)
    assert out['NLL'] == pytest.approx(log_loss(y.numpy(), p.numpy(), labels=[0, 1, 2, 3]), rel=1e-9)
    brier = ((p - F.one_hot(y, 4).double()) ** 2).sum(1).mean()
    assert out['Brier'] == pytest.approx(float(brier), rel=1e-9)
    conf, pred = p.max(1)
    assert out['ECE'] == pytest.approx(calibration_error(conf, pred == y, 15), rel=1e-9)
    tm = multiclass_calibration_error(p.float(), y, num_classes=4, n_bins=15)
    assert out['ECE'] == pytest.approx(float(tm), abs=1e-5)


def test_calibration_summary_changes_with_the_temperature():
    z, y = _calibrated(n=3000, k=4, seed=12)
    a, b = calibration_summary(z * 3, y, 1.0), calibration_summary(z * 3, y, 3.0)
    assert a['accuracy'] == b['accuracy']  # a scalar temperature keeps the argmax
    assert b['NLL'] < a['NLL'] and b['ECE'] < a['ECE']  # z * 3 / 3 is the calibrated model


def test_calibration_summary_per_class_temperatures():
    from sklearn.metrics import log_loss
    z, y = _calibrated(n=500, k=3, seed=13)
    t = [0.5, 1.0, 4.0]
    p = torch.softmax(z / torch.tensor(t, dtype=torch.float64), 1)
    out = calibration_summary(z, y, temperature=t)
    assert out['NLL'] == pytest.approx(log_loss(y.numpy(), p.numpy(), labels=[0, 1, 2]), rel=1e-9)
    assert out['accuracy'] == pytest.approx(float((p.argmax(1) == y).double().mean()))


@pytest.mark.parametrize('temperature', [1.0, 2.0])
def test_calibration_summary_binary_one_channel_matches_sklearn(temperature):
    from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

    from uqseg.core.functional import calibration_error
    g = torch.Generator().manual_seed(14)
    z = torch.randn(2000, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(2000, generator=g, dtype=torch.float64) < torch.sigmoid(z / 2)).long()
    p = 1 / (1 + torch.exp(-z / temperature))  # positive-class probability
    out = calibration_summary(z, y, temperature=temperature)
    assert out['accuracy'] == pytest.approx(accuracy_score(y.numpy(), (p > 0.5).long().numpy()), abs=1e-12)
    assert out['NLL'] == pytest.approx(log_loss(y.numpy(), p.numpy()), rel=1e-9)
    assert out['Brier'] == pytest.approx(brier_score_loss(y.numpy(), p.numpy()), rel=1e-9)
    conf = torch.maximum(p, 1 - p)  # top-label confidence of the two classes
    assert out['ECE'] == pytest.approx(calibration_error(conf, (p > 0.5).long() == y, 15), rel=1e-9)
    # the same as the two-class softmax of logits (0, z)
    two = torch.stack([torch.zeros_like(z), z], 1)
    out2 = calibration_summary(two, y, temperature=temperature)
    assert out2['ECE'] == pytest.approx(out['ECE'], abs=1e-9)
    assert out2['NLL'] == pytest.approx(out['NLL'], rel=1e-9)
    assert out2['Brier'] == pytest.approx(2 * out['Brier'], rel=1e-9)  # multiclass Brier sums both classes


def test_calibration_summary_hand_worked_two_rows():
    # rows softmax [e/(e+1), 1/(e+1)] with label 0 and label 1: accuracy 1/2
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0, 1])
    out = calibration_summary(z, y)
    p = math.e / (math.e + 1)
    assert out['accuracy'] == 0.5
    assert out['NLL'] == pytest.approx((-math.log(p) - math.log(1 - p)) / 2)
    assert out['Brier'] == pytest.approx((2 * (1 - p) ** 2 + 2 * p ** 2) / 2)
    assert out['ECE'] == pytest.approx(abs(p - 0.5))  # one bin, confidence p, accuracy 1/2
