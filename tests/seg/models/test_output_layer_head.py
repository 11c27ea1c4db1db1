"""OutputLayerHead with mmseg's own machinery: the OHEM pixel sampler, a Pretrained init_cfg of the
head, and mixed precision in the distance layer."""
import torch
from mmengine.runner import save_checkpoint
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import uqseg  # noqa: F401
from uqseg.core.prototype_distance import prototype_distances

LOSSES = {'EDLLayer': dict(type='EDLLoss', kl_anneal_iters=0), 'DisMaxLayer': dict(type='DisMaxLoss')}


def _head(layer, **head):
    return MODELS.build(dict(type='OutputLayerHead', output_layer=dict(type=layer), loss_decode=LOSSES[layer],
                             head=dict(type='FCNHead', in_channels=8, channels=6, num_convs=1, num_classes=3, **head)))


def _samples(n=2, size=8):
    g = torch.Generator().manual_seed(0)
    return [SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 3, (1, size, size), generator=g)))
            for _ in range(n)]


def test_the_ohem_sampler_ranks_pixels_by_the_layers_per_pixel_loss():
    for layer in LOSSES:
        h = _head(layer, sampler=dict(type='OHEMPixelSampler', min_kept=10))
        losses = h.loss([torch.randn(2, 8, 8, 8)], _samples(), None)
        name = h.losses[0].loss_name
        assert torch.isfinite(losses[name]) and losses[name] > 0
        z = torch.rand(2, 3, 4, 4)
        crit = h.losses[0]
        label = torch.randint(0, 3, (2, 4, 4))
        label[0, 0, 0] = 255
        per_pixel = crit(-z if layer == 'DisMaxLayer' else z, label, ignore_index=255, reduction_override='none')
        assert per_pixel.shape == (2, 4, 4) and per_pixel[0, 0, 0] == 0
        mean = crit(-z if layer == 'DisMaxLayer' else z, label, ignore_index=255)
        assert torch.allclose(per_pixel.sum() / 31, mean)


def test_a_pretrained_init_cfg_of_the_head_loads_into_the_output_layer(tmp_path):
    src = _head('EDLLayer')
    with torch.no_grad():
        src.conv_seg.weight.fill_(0.5)
    path = str(tmp_path / 'head.pth')
    save_checkpoint({'state_dict': src.state_dict()}, path)
    h = _head('EDLLayer', init_cfg=dict(type='Pretrained', checkpoint=path))
    h.init_weights()
    assert torch.equal(h.conv_seg.weight, src.conv_seg.weight)
    assert torch.equal(h.convs[0].conv.weight, src.convs[0].conv.weight)
    # the default init_cfg: mmseg's Normal(std=0.01) override of conv_seg is gone, the layer keeps its own
    d = _head('DisMaxLayer')
    before = d.conv_seg.prototypes.clone()
    d.init_weights()
    assert torch.equal(d.conv_seg.prototypes, before) and 0.5 < before.std() < 2


def test_distances_stay_float32_under_autocast():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(3, 16, generator=g)
    x = (p[0] + 0.01 * torch.randn(64, 16, generator=g)).T.reshape(1, 16, 8, 8).contiguous()
    ref = prototype_distances(x.double(), p.double(), torch.ones(1, dtype=torch.float64))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        d = prototype_distances(x, p, torch.ones(1))
    assert d.dtype == torch.float32
    assert (d[:, 0] - ref[:, 0]).abs().max() < 1e-3 and (d[:, 0] > 0).all()
