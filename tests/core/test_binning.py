"""uqseg.core.binning: the fast bin index is exactly the reference one, and the (masked) per-bin
sums and histograms equal the sums of the selected values."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.exact import next_toward
from uqseg.core.accumulators import CalibrationAccumulator
from uqseg.core.binning import (
    batched_calibration_errors,
    bin_index,
    bin_keys,
    bin_sums,
    errors_from_bin_sums,
    fast_bin_index,
    histogram,
    reliability,
)


def _reference_sums(conf, correct, n_bins):
    """[count, sum conf, sum correct] per bin from the reference bin_index and index_add."""
    k = bin_index(conf, n_bins)
    out = torch.zeros(3, n_bins, dtype=torch.float64)
    out[0].index_add_(0, k, torch.ones_like(conf, dtype=torch.float64))
    out[1].index_add_(0, k, conf.to(torch.float64))
    out[2].index_add_(0, k, correct.to(torch.float64))
    return out


def test_bin_edges_are_right_closed_with_zero_in_the_first_bin():
    # bins (k/n, (k+1)/n]: 0 and .1 in bin 0, .1 + ulp in bin 1, 1.0 in the last bin
    conf = torch.tensor([0.0, 0.1, 0.1 + 1e-12, 0.5, 0.55, 1.0], dtype=torch.float64)
    assert bin_index(conf, 10).tolist() == [0, 0, 1, 4, 5, 9]
    assert fast_bin_index(conf, 10).tolist() == [0, 0, 1, 4, 5, 9]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize('n_bins', [1, 2, 3, 7, 10, 15, 1000, 10000, 2 ** 20])
def test_fast_binning_equals_reference_on_edges(dtype, n_bins):
    g = torch.Generator().manual_seed(n_bins)
    edges = (torch.arange(n_bins + 1, dtype=torch.float64) / n_bins).to(dtype)
    up = next_toward(edges, torch.ones_like(edges)).clamp(0, 1)
    down = next_toward(edges, torch.zeros_like(edges)).clamp(0, 1)
    conf = torch.cat([torch.rand(5000, generator=g).to(dtype), edges, up, down])
    assert torch.equal(fast_bin_index(conf, n_bins), bin_index(conf, n_bins))
    ok = torch.rand(conf.shape, generator=g) < 0.6
    valid = torch.rand(conf.shape, generator=g) < 0.8
    ref = bin_sums(conf[valid], ok[valid], n_bins)
    assert torch.allclose(ref, _reference_sums(conf[valid], ok[valid], n_bins), rtol=1e-12, atol=1e-9)
    for corr in (ok, ok.long(), ok.to(dtype)):
        got = bin_sums(conf, corr, n_bins, valid)
        assert torch.allclose(got, ref, rtol=1e-12, atol=1e-9)
    soft = torch.rand(conf.shape, generator=g, dtype=torch.float64)
    assert torch.allclose(bin_sums(conf, soft, n_bins, valid, hard=False),
                          bin_sums(conf[valid], soft[valid], n_bins), rtol=1e-12, atol=1e-9)
    h = histogram(conf, n_bins, valid, split=ok)
    assert torch.equal(h[0], bin_sums(conf[valid & ok], ok[valid & ok], n_bins)[0])
    assert torch.equal(h[1], bin_sums(conf[valid & ~ok], ok[valid & ~ok], n_bins)[0])
    assert torch.equal(histogram(conf, n_bins), bin_sums(conf, ok, n_bins)[0])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2 ** 20), st.sampled_from([torch.float32, torch.float64]),
       st.lists(st.floats(0, 1, width=32), min_size=1, max_size=20), st.lists(st.integers(0, 2 ** 20), max_size=8))
def test_fast_binning_equals_reference_property(n_bins, dtype, values, at_edges):
    # arbitrary confidences, plus edges k/n (as stored in the dtype) of this n and their neighbours
    edges = (torch.tensor([k % (n_bins + 1) for k in at_edges], dtype=torch.float64) / n_bins).to(dtype)
    conf = torch.cat([torch.tensor(values, dtype=dtype), edges,
                      next_toward(edges, torch.ones_like(edges)).clamp(0, 1),
                      next_toward(edges, torch.zeros_like(edges)).clamp(0, 1)])
    assert torch.equal(fast_bin_index(conf, n_bins), bin_index(conf, n_bins))


def test_bin_keys_split_and_invalid_key():
    conf = torch.tensor([0.05, 0.95, 0.5, 0.7])
    split = torch.tensor([1, 0, 1, 1])
    valid = torch.tensor([True, True, True, False])
    key, n_keys = bin_keys(conf, 10, split, valid)
    assert n_keys == 21 and key.dtype == torch.int32
    assert key.tolist() == [1, 18, 9, 20]  # 2 * bin + split; the invalid value gets the extra key
    key, n_keys = bin_keys(conf, 10)
    assert n_keys == 11 and key.tolist() == [0, 9, 4, 6]


def test_bin_sums_rejects_different_sizes_and_bad_n_bins():
    with pytest.raises(ValueError, match='conf has 3 values but correct has 2'):
        bin_sums(torch.rand(3), torch.ones(2), 10)
    with pytest.raises(ValueError, match='n_bins must be a positive int, got 0'):
        bin_index(torch.rand(3), 0)


def test_batched_calibration_errors_equal_the_errors_of_each_block():
    g = torch.Generator().manual_seed(0)
    blocks = []
    for i in range(5):
        conf = torch.rand(40 + i, generator=g, dtype=torch.float64)
        blocks.append(bin_sums(conf, torch.rand(conf.shape, generator=g) < conf, 10))
    blocks.append(torch.zeros(3, 10, dtype=torch.float64))  # no value: NaN
    states = torch.stack(blocks).reshape(2, 3, 3, 10)
    got = batched_calibration_errors(states)
    assert set(got) == {'ECE', 'MCE', 'RMSCE', 'OE'}
    for key, value in got.items():
        assert value.shape == (2, 3) and value.dtype == torch.float64
        for i, block in enumerate(blocks):
            ref = errors_from_bin_sums(block)[key]
            v = float(value.reshape(-1)[i])
            assert (math.isnan(ref) and math.isnan(v)) or v == pytest.approx(ref, abs=1e-15)
    assert all(math.isnan(v) for v in errors_from_bin_sums(blocks[-1]).values())


def test_reliability_of_sums_gives_tensors_per_bin():
    conf = torch.tensor([0.05, 0.15, 0.18, 0.95], dtype=torch.float64)
    correct = torch.tensor([1, 0, 1, 1])
    r = reliability(bin_sums(conf, correct, 4))  # bins (0, .25], (.25, .5], (.5, .75], (.75, 1]
    assert set(r) == {'count', 'conf', 'acc', 'lower', 'upper'}
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float64 for v in r.values())
    assert r['count'].tolist() == [3, 0, 0, 1]
    assert r['acc'][0].item() == pytest.approx(2 / 3) and r['acc'][3].item() == 1
    assert r['conf'][0].item() == pytest.approx((0.05 + 0.15 + 0.18) / 3)
    assert torch.isnan(r['acc'][1:3]).all() and torch.isnan(r['conf'][1:3]).all()
    assert r['lower'].tolist() == [0, 0.25, 0.5, 0.75] and r['upper'].tolist() == [0.25, 0.5, 0.75, 1]
    acc = CalibrationAccumulator(4)
    acc.update(conf, correct)
    for k, v in acc.reliability().items():
        assert torch.equal(torch.nan_to_num(v, nan=-1), torch.nan_to_num(r[k], nan=-1)), k
    with pytest.raises(ValueError, match=r'shape \(3, n_bins\)'):
        reliability(torch.zeros(2, 4))
