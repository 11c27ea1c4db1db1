"""Temperature fitting (uqseg.core.temperature): it recovers a known temperature from logits of a
calibrated model that were then scaled, never raises the NLL of the fitting data, and refuses
empty or broken data."""
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

from uqseg.core.temperature import apply_temperature, fit_temperature, temperature_nll


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


def test_apply_temperature_divides_the_class_dimension():
    z = torch.randn(2, 3, 4, 4)
    t = torch.tensor([1.0, 2.0, 4.0])
    out = apply_temperature(z, t, dim=1)
    assert torch.allclose(out[:, 2], z[:, 2] / 4) and torch.allclose(apply_temperature(z, 2.0), z / 2)
    assert torch.allclose(F.softmax(apply_temperature(z, 1.0), 1), F.softmax(z, 1))
