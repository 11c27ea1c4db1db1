"""DisMaxLoss (uqseg.core.dismax_loss; spec section 3): cross-entropy of softmax(E * z) over valid
pixels, its weights and reductions, and its input checks."""
import pytest
import torch
import torch.nn.functional as F

from uqseg.core.checks import LabelRangeError
from uqseg.core.dismax_loss import DisMaxLoss

pytestmark = pytest.mark.usefixtures('one_thread')
IGN = 255


def _data(n=2, k=4, h=3, w=5, seed=0):
    """Distance logits (N,K,H,W) <= 0 and labels (N,H,W) with some IGN pixels."""
    g = torch.Generator().manual_seed(seed)
    z = -2 * torch.rand(n, k, h, w, generator=g)
    y = torch.randint(0, k, (n, h, w), generator=g)
    y[0, 1, :] = IGN
    y[1, 0, 0] = IGN
    return z, y


def _ce_by_hand(z, y, e):
    """Per-pixel -log softmax(e z)_y from logsumexp (0 at ignored pixels) and the valid mask."""
    valid = y != IGN
    yy = torch.where(valid, y, 0)
    ez = e * z.double()
    nll = torch.logsumexp(ez, 1) - ez.gather(1, yy[:, None])[:, 0]
    return torch.where(valid, nll, torch.zeros_like(nll)), valid


@pytest.mark.parametrize('e', [10.0, 1.0, 3.5])
def test_dismax_loss_is_cross_entropy_of_scaled_logits_over_valid_pixels(e):
    z, y = _data()
    crit = DisMaxLoss(entropic_scale=e)
    got = crit(z, y)
    assert got.dtype == torch.float32 and got.dim() == 0
    assert got.item() == pytest.approx(F.cross_entropy(e * z, y, ignore_index=IGN).item(), rel=1e-6)
    nll, valid = _ce_by_hand(z, y, e)
    assert got.item() == pytest.approx((nll.sum() / valid.sum()).item(), rel=1e-5)
    assert DisMaxLoss(entropic_scale=e, loss_weight=0.5)(z, y).item() == pytest.approx(0.5 * got.item(), rel=1e-6)


def test_default_entropic_scale_is_ten_and_rows_work():
    assert DisMaxLoss().entropic_scale == 10.0
    g = torch.Generator().manual_seed(1)
    z = -torch.rand(6, 3, generator=g)
    y = torch.tensor([0, 2, IGN, 1, 1, 0])
    want = F.cross_entropy(10 * z, y, ignore_index=IGN)
    assert DisMaxLoss()(z, y).item() == pytest.approx(want.item(), rel=1e-6)


def test_ignore_index():
    z, y = _data(seed=2)
    y9 = torch.where(y == IGN, torch.full_like(y, 9), y)
    crit = DisMaxLoss()
    assert crit(z, y9, ignore_index=9).item() == pytest.approx(crit(z, y).item(), rel=1e-6)
    # ignored pixels contribute nothing whatever their logits
    z2 = z.clone()
    z2[0, :, 1, :] = -50.0 * torch.rand(4, 5)
    assert crit(z2, y).item() == pytest.approx(crit(z, y).item(), rel=1e-6)
    assert crit(z, torch.full_like(y, IGN)).item() == 0.0


def test_weight_map_and_avg_non_ignore():
    z, y = _data(seed=3)
    wmap = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(4))
    nll, valid = _ce_by_hand(z, y, 10.0)
    n_valid = int(valid.sum())
    want = (nll * wmap.double()).sum().item() / n_valid  # divided by the count, not the weight sum
    crit = DisMaxLoss()
    assert crit(z, y, weight=wmap).item() == pytest.approx(want, rel=1e-5)
    assert crit(z, y, weight=wmap[:, None]).item() == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match='DisMaxLoss: weight shape'):
        crit(z, y, weight=wmap[:1])
    all_px = DisMaxLoss(avg_non_ignore=False)
    assert all_px(z, y).item() == pytest.approx(nll.sum().item() / 30, rel=1e-5)


def test_refuses_positive_inputs_naming_the_layer():
    z, y = _data()
    z[1, 2, 2, 2] = 0.5
    with pytest.raises(ValueError, match=r'DisMaxLoss needs distance logits \(<= 0\).*DisMaxLayer'):
        DisMaxLoss()(z, y)
    z[1, 2, 2, 2] = 1e-6  # rounding above 0 is tolerated
    DisMaxLoss()(z, y)


def test_gradient_and_errors():
    z, y = _data()
    z.requires_grad_(True)
    DisMaxLoss()(z, y).backward()
    assert bool(torch.isfinite(z.grad).all())
    assert torch.equal(z.grad[0, :, 1, :], torch.zeros(4, 5))  # ignored row
    y[1, 2, 3] = 4
    with pytest.raises(LabelRangeError, match=r'DisMaxLoss: labels must be 0\.\.3.*sample 1') as info:
        DisMaxLoss()(z.detach(), y)
    assert info.value.sample == 1
    with pytest.raises(TypeError, match=r"DisMaxLoss got unknown argument\(s\) 'use_sigmoid'.*_delete_=True"):
        DisMaxLoss(use_sigmoid=False)
    for bad in (0.0, -10.0, float('nan')):
        with pytest.raises(ValueError, match='entropic_scale must be > 0'):
            DisMaxLoss(entropic_scale=bad)
    with pytest.raises(ValueError, match='cls_score must be float'):
        DisMaxLoss()(torch.zeros(2, 4, 3, 5, dtype=torch.long), y)
    crit = DisMaxLoss(loss_name='loss_dm')
    assert crit.loss_name == 'loss_dm' and DisMaxLoss().loss_name == 'loss_dismax'
