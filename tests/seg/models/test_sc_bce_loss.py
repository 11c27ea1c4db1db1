"""SCBCELoss in mmseg: registered in MODELS, and inside a decode head's loss_by_feat equal to mmseg's
sigmoid cross-entropy at alpha 0."""
import pytest
import torch

from uqseg.core.sc_bce import SCBCELoss

pytestmark = pytest.mark.usefixtures('one_thread')
IGN = 255


def _mmseg_batch(n=2, h=16, w=16, seed=9):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        lab = torch.randint(0, 2, (1, h, w), generator=g)
        lab[torch.rand(1, h, w, generator=g) < 0.1] = IGN
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=lab)
        samples.append(s)
    seg_logits = 3 * torch.randn(n, 1, h // 2, w // 2, generator=g)
    return seg_logits, samples


def _fcn_head(loss_decode):
    import mmseg.models  # noqa: F401  (registers FCNHead, CrossEntropyLoss)
    from mmseg.registry import MODELS
    return MODELS.build(dict(type='FCNHead', in_channels=4, channels=4, num_convs=1,
                             num_classes=2, out_channels=1, threshold=0.5,
                             loss_decode=loss_decode))


def test_scbce_loss_builds_from_the_mmseg_registry():
    from mmseg.registry import MODELS

    import uqseg  # noqa: F401
    loss = MODELS.build(dict(type='SCBCELoss', perturbation='SI', mode='expected', alpha=0.2,
                             loss_weight=0.5, loss_name='loss_aslp'))
    assert isinstance(loss, SCBCELoss)
    assert loss.loss_name == 'loss_aslp' and loss.beta == 1.5 and loss.alpha == 0.2


@pytest.mark.parametrize('avg_non_ignore', [True, False])
@pytest.mark.parametrize('mode', ['sample', 'expected'])
def test_fcn_head_loss_by_feat_matches_mmseg_bce_at_alpha_zero(mode, avg_non_ignore):
    seg_logits, samples = _mmseg_batch()
    head = _fcn_head(dict(type='SCBCELoss', mode=mode, alpha=0.0, loss_weight=0.7,
                          avg_non_ignore=avg_non_ignore))
    ref_head = _fcn_head(dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=0.7,
                              avg_non_ignore=avg_non_ignore))
    losses = head.loss_by_feat(seg_logits, samples)
    ref = ref_head.loss_by_feat(seg_logits, samples)
    assert set(losses) == {'loss_scbce', 'acc_seg'}
    assert torch.isfinite(losses['loss_scbce'])
    torch.testing.assert_close(losses['loss_scbce'], ref['loss_ce'], rtol=1e-5, atol=1e-7)


def test_fcn_head_loss_by_feat_with_perturbation_is_finite_and_differs():
    seg_logits, samples = _mmseg_batch(seed=10)
    head = _fcn_head(dict(type='SCBCELoss', mode='expected', alpha=0.3))
    ref_head = _fcn_head(dict(type='CrossEntropyLoss', use_sigmoid=True, avg_non_ignore=True))
    seg_logits.requires_grad_(True)
    loss = head.loss_by_feat(seg_logits, samples)['loss_scbce']
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(seg_logits.grad).all() and seg_logits.grad.abs().sum() > 0
    assert abs(loss.item() - ref_head.loss_by_feat(seg_logits, samples)['loss_ce'].item()) > 1e-4
