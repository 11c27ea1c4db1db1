"""Output layers (uqseg.core.output_layers; spec sections 2 and 3): EDLLayer against a hand-made
1x1 convolution, its checkpoint compatibility with plain heads, and the prototype-distance
layers' formulas, initialisation, checks and a short real optimisation."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from uqseg.core.dismax_loss import DisMaxLoss
from uqseg.core.evidential import EVIDENCE_FUNCTIONS, log_alpha
from uqseg.core.output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer

pytestmark = pytest.mark.usefixtures('one_thread')
D64 = torch.float64
R2 = math.sqrt(2.0)


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _set_params(layer, seed):
    with torch.no_grad():
        for prm in layer.parameters():
            prm.copy_(_rand(*prm.shape, seed=seed))
            seed += 1


# ---------------------------------------------------------------------------- EDLLayer
@pytest.mark.parametrize('kind', EVIDENCE_FUNCTIONS)
def test_edl_layer_outputs_log_alpha_of_a_1x1_conv(kind):
    layer = EDLLayer(5, 3, evidence=kind)
    _set_params(layer, 1)
    x = _rand(2, 5, 4, 3, seed=10)
    f = F.conv2d(x, layer.weight.detach(), layer.bias.detach())  # (K, D, 1, 1) weight by hand
    f_hand = torch.einsum('nd...,kd->nk...', x, layer.weight.detach()[:, :, 0, 0]) + layer.bias.detach()[:, None, None]
    assert torch.allclose(f, f_hand, atol=1e-5)
    out = layer(x)
    assert out.shape == (2, 3, 4, 3)
    assert torch.allclose(layer.logits(x), f, atol=1e-6)
    assert torch.allclose(out, log_alpha(f, kind), atol=1e-6)
    assert bool((out >= 0).all())
    # rows (N, D) go through a linear map equal to the conv on 1x1 maps
    rows = _rand(6, 5, seed=11)
    assert layer(rows).shape == (6, 3)
    assert torch.allclose(layer(rows), layer(rows[:, :, None, None])[:, :, 0, 0], atol=1e-6)
    assert torch.allclose(layer.logits(rows), rows @ layer.weight.detach()[:, :, 0, 0].T + layer.bias.detach(),
                          atol=1e-5)
    with pytest.raises(ValueError, match=r'EDLLayer expects \(N, D, H, W\) or \(N, D\) features'):
        layer(_rand(2, 5, 3, seed=12))


def test_edl_layer_exp_clamp_is_used():
    layer = EDLLayer(2, 2, evidence='exp', exp_clamp=2.0)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[100.0, 0.0], [-100.0, 0.0]])[:, :, None, None])
        layer.bias.zero_()
    out = layer(torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(out, torch.tensor([[math.log1p(math.exp(2.0)), math.log1p(math.exp(-2.0))]]), atol=1e-6)


def test_edl_layer_plain_stage_outputs_logits_and_kinds():
    layer = EDLLayer(4, 3, evidential=False)
    _set_params(layer, 2)
    x = _rand(2, 4, 2, 2, seed=13)
    assert torch.allclose(layer(x), F.conv2d(x, layer.weight, layer.bias), atol=1e-6)
    assert layer.output_kind == 'logits' and layer.default_score == 'max-prob'
    assert layer.scores == ('max-prob', 'entropy', 'margin', 'MPS', 'ES')
    assert bool((layer(x) < 0).any())  # plain logits, not log alpha
    layer.set_evidential(True)
    assert layer.output_kind == 'log_alpha' and layer.default_score == 'vacuity'
    assert layer.scores == ('max-prob', 'entropy', 'margin', 'MPS', 'ES', 'vacuity')
    assert torch.allclose(layer(x), log_alpha(F.conv2d(x, layer.weight, layer.bias)), atol=1e-6)
    assert 'evidential=True' in repr(layer) and "evidence='relu'" in repr(layer)


def test_edl_layer_state_dict_and_plain_checkpoints():
    layer = EDLLayer(6, 4)
    assert set(layer.state_dict()) == {'weight', 'bias', 'evidential'}
    assert layer.state_dict()['weight'].shape == (4, 6, 1, 1)
    # a plain head's conv_seg (1x1 Conv2d) loads strictly: the missing 'evidential' is not reported
    conv = nn.Conv2d(6, 4, 1)
    res = layer.load_state_dict(conv.state_dict(), strict=True)
    assert list(res.missing_keys) == [] and list(res.unexpected_keys) == []
    assert torch.equal(layer.weight, conv.weight) and torch.equal(layer.bias, conv.bias)
    assert bool(layer.evidential)  # the configured value is kept
    x = _rand(3, 6, 2, 2, seed=14)
    assert torch.allclose(layer.logits(x), conv(x), atol=1e-6)
    # an nn.Linear's (K, D) weight is reshaped on loading
    lin = nn.Linear(6, 4)
    layer.load_state_dict(lin.state_dict(), strict=True)
    assert torch.equal(layer.weight[:, :, 0, 0], lin.weight) and torch.equal(layer.bias, lin.bias)
    rows = _rand(5, 6, seed=15)
    assert torch.allclose(layer.logits(rows), lin(rows), atol=1e-6)
    # a plain checkpoint into a stage-1 layer keeps evidential=False
    plain = EDLLayer(6, 4, evidential=False)
    plain.load_state_dict(conv.state_dict())
    assert not bool(plain.evidential)
    # a saved stage (evidential=False) restores it; strict loading of a wrong shape still fails
    saved = EDLLayer(6, 4, evidential=False)
    _set_params(saved, 3)
    fresh = EDLLayer(6, 4)
    fresh.load_state_dict(saved.state_dict(), strict=True)
    assert not bool(fresh.evidential) and fresh.output_kind == 'logits'
    assert torch.equal(fresh.weight, saved.weight)
    with pytest.raises(RuntimeError):
        EDLLayer(6, 4).load_state_dict(nn.Conv2d(6, 5, 1).state_dict())
    # an unexpected key is still reported
    with pytest.raises(RuntimeError, match='Unexpected key'):
        EDLLayer(6, 4).load_state_dict({**conv.state_dict(), 'extra': torch.zeros(1)})


def test_edl_layer_under_a_prefix_loads_a_conv_seg_checkpoint():
    head = nn.Module()
    head.conv_seg = EDLLayer(3, 2)
    plain = nn.Module()
    plain.conv_seg = nn.Conv2d(3, 2, 1)
    res = head.load_state_dict(plain.state_dict(), strict=True)
    assert list(res.missing_keys) == []
    assert torch.equal(head.conv_seg.weight, plain.conv_seg.weight)


def test_edl_layer_reset_parameters():
    torch.manual_seed(0)
    layer = EDLLayer(64, 32)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(1.0)
    layer.reset_parameters()
    assert layer.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert abs(layer.weight.mean().item()) < 0.002
    assert torch.equal(layer.bias, torch.zeros(32))


def test_edl_layer_argument_checks():
    with pytest.raises(ValueError, match=r'EDLLayer: num_classes must be >= 2.*out_channels=2'):
        EDLLayer(4, 1)
    with pytest.raises(ValueError, match='EDLLayer: in_channels must be >= 1'):
        EDLLayer(0, 3)
    with pytest.raises(ValueError, match='evidence must be one of'):
        EDLLayer(4, 3, evidence='tanh')
    with pytest.raises(ValueError, match='exp_clamp'):
        EDLLayer(4, 3, evidence='exp', exp_clamp=100.0)


# ---------------------------------------------------------------------------- prototype layers
def _ref_distances(x, protos, s):
    rows = x.movedim(1, -1).reshape(-1, x.shape[1]) if x.dim() == 4 else x
    d = abs(s) * torch.cdist(F.normalize(rows.double(), dim=1), F.normalize(protos.double(), dim=1)) / R2
    if x.dim() == 4:
        n, _, h, w = x.shape
        d = d.reshape(n, h, w, -1).movedim(-1, 1)
    return d


@pytest.mark.parametrize('cls', [DisMaxLayer, IsoMaxPlusLayer])
@pytest.mark.parametrize('temperature', [1.0, 0.5, 3.0])
def test_prototype_layers_output_formulas_over_temperature(cls, temperature):
    layer = cls(6, 4, temperature=temperature)
    with torch.no_grad():
        layer.distance_scale.fill_(-2.5)  # used as |s|
    for x in (_rand(2, 6, 3, 5, seed=20), _rand(7, 6, seed=21)):
        d = _ref_distances(x, layer.prototypes.detach(), 2.5)
        L = -(d + d.mean(1, keepdim=True)) if cls is DisMaxLayer else -d
        out = layer(x)
        assert out.shape == d.shape
        assert torch.allclose(out.double(), L / temperature, atol=1e-5)
        assert bool((out <= 0).all())
        assert torch.allclose(layer.distances(x).double(), d, atol=1e-5)
    assert float(layer.temperature) == temperature
    assert 'temperature' in layer.state_dict()
    assert set(layer.state_dict()) == {'prototypes', 'distance_scale', 'temperature'}
    with pytest.raises(ValueError, match='expects'):
        layer(_rand(2, 6, 3, seed=22))


def test_prototype_layer_kinds_and_scores():
    for layer, default in ((DisMaxLayer(3, 2), 'MMLES'), (IsoMaxPlusLayer(3, 2), 'MDS')):
        assert layer.output_kind == 'distance_logits'
        assert layer.default_score == default
        assert layer.scores == ('max-prob', 'entropy', 'margin', 'MPS', 'ES', 'MDS', 'MMLS', 'MMLES')
        assert 'temperature=1' in repr(layer)


@pytest.mark.parametrize('cls', [DisMaxLayer, IsoMaxPlusLayer])
def test_prototype_layer_checks(cls):
    for bad in (0.0, -1.0, float('nan')):
        with pytest.raises(ValueError, match=f'{cls.__name__}: temperature must be > 0'):
            cls(4, 3, temperature=bad)
    with pytest.raises(ValueError, match=rf'{cls.__name__}: num_classes must be >= 2.*out_channels=2'):
        cls(4, 1)
    with pytest.raises(ValueError, match='in_channels must be >= 1'):
        cls(0, 3)


def test_prototype_layer_initialisation():
    torch.manual_seed(1)
    layer = DisMaxLayer(64, 32)
    p = layer.prototypes.detach()
    assert p.shape == (32, 64)
    assert p.std().item() == pytest.approx(1.0, rel=0.1)
    assert abs(p.mean().item()) < 0.1
    assert torch.equal(layer.distance_scale.detach(), torch.ones(1))
    with torch.no_grad():
        layer.prototypes.zero_()
        layer.distance_scale.fill_(5.0)
    layer.reset_parameters()
    assert layer.prototypes.std().item() == pytest.approx(1.0, rel=0.1)
    assert layer.distance_scale.item() == 1.0


@pytest.mark.parametrize('cls', [DisMaxLayer, IsoMaxPlusLayer])
def test_dismax_loss_training_separates_a_toy_problem(cls):
    """Three classes of 8-d features around three random directions (noisy, separable): a few
    Adam steps on the layer alone reduce DisMaxLoss and classify every training point."""
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(3, 8, generator=g)
    y = torch.arange(3).repeat_interleave(40)
    x = centres[y] + 0.3 * torch.randn(120, 8, generator=g)
    torch.manual_seed(4)
    layer = cls(8, 3)
    crit = DisMaxLoss()
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = crit(layer(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    with torch.no_grad():
        out = layer(x)
    assert bool((out.argmax(1) == y).all())
    # the same on a (N, D, H, W) map of those features
    xm = x.T.reshape(1, 8, 12, 10)
    assert bool((layer(xm).argmax(1) == y.reshape(1, 12, 10)).all())
