"""uqseg.core.checks: each check raises naming the argument and the first bad value."""
import pytest
import torch

from uqseg.core.checks import check_binary, check_n_bins, check_tpr, check_unit, flat_pair, fpr_key


def test_check_unit_names_non_finite_and_out_of_range_values():
    check_unit(torch.tensor([0.0, 0.5, 1.0]), 'conf')
    check_unit(torch.zeros(0), 'conf')
    with pytest.raises(ValueError, match=r'probs must be finite, got nan \(at 2 position\(s\)\)'):
        check_unit(torch.tensor([0.5, float('nan'), float('nan')]), 'probs')
    with pytest.raises(ValueError, match=r'conf must lie in \[0, 1\], got 1.5'):
        check_unit(torch.tensor([0.5, 1.5]), 'conf')


def test_check_binary_accepts_bool_and_0_1_only():
    check_binary(torch.tensor([True, False]), 'correct')
    check_binary(torch.tensor([0.0, 1.0]), 'correct')
    with pytest.raises(ValueError, match='correct must be bool or 0/1 for this metric, got 2'):
        check_binary(torch.tensor([0, 2]), 'correct')


@pytest.mark.parametrize('bad', [0, -3, 2.0, True, '10', None])
def test_check_n_bins_wants_a_positive_int(bad):
    assert check_n_bins(15) == 15
    with pytest.raises(ValueError, match=f'n_bins must be a positive int, got {bad!r}'):
        check_n_bins(bad)


def test_check_tpr_and_fpr_key():
    assert check_tpr(1.0) == 1.0 and check_tpr(0.95) == 0.95
    for bad in (0.0, 1.2, -0.1):
        with pytest.raises(ValueError, match=r'tpr must lie in \(0, 1\]'):
            check_tpr(bad)
    assert fpr_key(0.95) == 'FPR@95TPR' and fpr_key(0.8) == 'FPR@80TPR'


def test_flat_pair_flattens_checks_and_returns_float64_correctness():
    conf, correct = flat_pair(torch.rand(2, 3), torch.ones(2, 3, dtype=torch.bool), binary=True)
    assert conf.shape == (6,) and correct.dtype == torch.float64 and correct.sum() == 6
    with pytest.raises(ValueError, match='same shape'):
        flat_pair(torch.rand(3), torch.ones(2), binary=False)
    with pytest.raises(ValueError, match='floating-point'):
        flat_pair(torch.ones(3, dtype=torch.long), torch.ones(3), binary=False)
    with pytest.raises(ValueError, match='correct must be bool or 0/1'):
        flat_pair(torch.rand(2), torch.tensor([0.5, 1.0]), binary=True)
    with pytest.raises(ValueError, match=r'correct must lie in \[0, 1\], got 3'):
        flat_pair(torch.rand(2), torch.tensor([0, 3]), binary=False)
    with pytest.raises(TypeError, match='torch.Tensors'):
        flat_pair([0.5], torch.ones(1), binary=False)
