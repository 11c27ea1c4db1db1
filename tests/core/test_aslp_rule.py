"""ASLP's per-image alpha update rule (uqseg.core.aslp_rule; spec section 1) on hand-worked cases."""
import pytest
import torch

from uqseg.core.aslp_rule import AT_CAP_TOL, DEFAULT_ETA, DEFAULT_LAMBDA, aslp_update, default_alpha_max

pytestmark = pytest.mark.usefixtures('one_thread')


def test_update_rule_calibration_hand_worked():
    kw = dict(beta=2.0, eta=0.1, lam=10.0, alpha_max=0.45)
    # R = 1 - alpha - 0.9: image 0 R = 0 (no penalty) -> 0.1 + 0.1*0.5 = 0.15;
    # image 1 R = -0.3 -> 0.4 + 0.1*(-2 - 3) = -0.1 -> clipped to 0
    out = aslp_update(torch.tensor([0.1, 0.4]), torch.tensor([0.5, -2.0]), 0.9, **kw)
    assert out.tolist() == pytest.approx([0.15, 0.0])
    # acc 0.5: R > 0 for both; 0.3 + 0.2 = 0.5 -> clipped to 0.45; 0.05 + 0.1 = 0.15
    out = aslp_update(torch.tensor([0.3, 0.05]), torch.tensor([2.0, 1.0]), 0.5, **kw)
    assert out.tolist() == pytest.approx([0.45, 0.15])
    # beta = 1 halves the alpha term of R: R = 1 - 0.5*0.4 - 0.9 = -0.1 -> 0.4 + 0.1*(0 - 1)
    out = aslp_update([0.4, 0.0], [0.0, 0.0], 0.9, beta=1.0, eta=0.1, lam=10.0, alpha_max=1.0)
    assert out.tolist() == pytest.approx([0.3, 0.0])


def test_update_rule_conservative_hand_worked():
    kw = dict(beta=2.0, eta=0.1, lam=10.0, alpha_max=0.45, mode='conservative')
    # R = 0.8 - 0.85 = -0.05 -> penalty -0.5: 0.2 + 0.1*(1 - 0.5) = 0.25; 0.4 + 0.55 -> 0.45
    out = aslp_update(torch.tensor([0.2, 0.4]), torch.tensor([1.0, 6.0]), 0.8, acc_ref=0.85, **kw)
    assert out.tolist() == pytest.approx([0.25, 0.45])
    # acc_val >= acc_ref (or acc_ref None): no penalty, alpha may hit 0
    out = aslp_update(torch.tensor([0.2, 0.05]), torch.tensor([1.0, -1.0]), 0.9, acc_ref=0.85,
                      **kw)
    assert out.tolist() == pytest.approx([0.3, 0.0])
    assert aslp_update([0.2], [1.0], 0.8, **kw).tolist() == pytest.approx([0.3])


def test_update_rule_without_validation_and_defaults():
    # acc_val None: pure gradient step, clipped
    out = aslp_update(torch.tensor([0.2, 0.0]), torch.tensor([1.0, -1.0]), None,
                      beta=2.0, eta=0.1, lam=10.0, alpha_max=0.45)
    assert out.tolist() == pytest.approx([0.3, 0.0])
    assert default_alpha_max(2.0) == pytest.approx(0.49)
    assert default_alpha_max(1.5) == pytest.approx(1 / 1.5 - 0.01)
    assert default_alpha_max(1.0) == pytest.approx(0.99)
    assert default_alpha_max(0.5) == 1.0
    # defaults: eta 2e-3, lambda 2000, alpha_max 0.49 at beta 2
    a = torch.tensor([0.1, 0.48], dtype=torch.float64)
    out = aslp_update(a, torch.tensor([1.0, 5.0]), 0.95)
    r = (1 - a) - 0.95
    ref = (a + DEFAULT_ETA * (torch.tensor([1.0, 5.0]) + DEFAULT_LAMBDA * r.clamp(max=0)))
    torch.testing.assert_close(out, ref.clamp(0, 0.49))
    assert out.dtype == torch.float64


def test_bad_update_inputs_raise_naming_the_value():
    a, g = torch.tensor([0.1, 0.2]), torch.tensor([0.0, 0.0])
    with pytest.raises(ValueError, match='sideways'):
        aslp_update(a, g, 0.9, mode='sideways')
    with pytest.raises(ValueError, match='1.1'):
        aslp_update(a, g, 1.1)
    with pytest.raises(ValueError, match='1.3'):
        aslp_update(a, g, 0.9, mode='conservative', acc_ref=1.3)
    with pytest.raises(ValueError, match='1.5'):
        aslp_update(a, g, 0.9, alpha_max=1.5)
    with pytest.raises(ValueError, match=r'\(2,\).*\(3,\)'):
        aslp_update(a, torch.zeros(3), 0.9)
    with pytest.raises(ValueError, match='nan'):
        aslp_update(a, torch.tensor([0.0, float('nan')]), 0.9)
    with pytest.raises(ValueError, match='-0.5'):
        aslp_update(torch.tensor([-0.5, 0.1]), g, 0.9)
    with pytest.raises(ValueError, match='3.0'):
        aslp_update(a, g, 0.9, beta=3.0)


def test_float32_alpha_at_the_cap_counts_as_at_the_cap():
    # the hook counts alphas within AT_CAP_TOL of alpha_max as capped; float32 alphas at the cap
    # differ from it by less than that, values one step of the rule away by much more
    cap = default_alpha_max(2.0)
    assert 0 < AT_CAP_TOL <= 1e-6
    assert abs(float(torch.tensor(cap, dtype=torch.float32)) - cap) < AT_CAP_TOL
