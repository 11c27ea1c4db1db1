"""ASLPHead, ``dict(type='ASLPHead', head=dict(type=<any mmseg decode head>, ...))``: per-image alphas
from sample_idx into SCBCELoss; the built head is the wrapped head class too."""
import pickle

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.models.decode_heads import FCNHead, UPerHead
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import uqseg  # noqa: F401
from uqseg.core.sc_bce import SCBCELoss, aslp_gradient
from uqseg.seg.models.heads import ASLPHead

pytestmark = pytest.mark.usefixtures('one_thread')
IGN = 255


def _fcn(**kw):
    """An ASLP FCN head; ``kw`` beside ``head`` are ASLPHead's own or override the head's entries."""
    cfg = dict(type='ASLPHead', head=dict(type='FCNHead', in_channels=8, channels=4, num_convs=1,
                                          loss_decode=dict(type='SCBCELoss', mode='expected')), num_samples=6)
    cfg.update(kw)
    return MODELS.build(cfg)


def _uper(**kw):
    cfg = dict(type='ASLPHead', head=dict(type='UPerHead', in_channels=[4, 8], in_index=[0, 1], channels=4,
                                          pool_scales=(1, 2), loss_decode=dict(type='SCBCELoss', mode='expected')),
               num_samples=6)
    cfg.update(kw)
    return MODELS.build(cfg)


def _samples(idx, h=8, w=8, seed=0, with_idx=True):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in idx:
        lab = torch.randint(0, 2, (1, h, w), generator=g)
        lab[torch.rand(1, h, w, generator=g) < 0.15] = IGN
        s = SegDataSample(metainfo=dict(sample_idx=i, img_shape=(h, w), pad_shape=(h, w)) if with_idx
                          else dict(img_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=lab)
        out.append(s)
    return out


def _feats(head, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    if isinstance(head, UPerHead):
        return [torch.randn(n, 4, 8, 8, generator=g), torch.randn(n, 8, 4, 4, generator=g)]
    return [torch.randn(n, 8, 4, 4, generator=g)]


@pytest.mark.parametrize('build,base', [(_fcn, FCNHead), (_uper, UPerHead)])
def test_any_head_type_gets_alphas_from_sample_idx(build, base):
    head = build()
    assert isinstance(head, base) and isinstance(head, ASLPHead)
    assert type(head).__name__ == f'ASLP{base.__name__}'
    assert type(build()) is type(head)  # the same base twice: the same class
    assert head.out_channels == 1 and head.threshold == 0.5
    plain = MODELS.build(dict(type=base.__name__, **head_cfg(head)))
    assert set(head.state_dict()) == set(plain.state_dict()) | {'alpha'}
    with torch.no_grad():
        head.alpha.copy_(torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.45]))
    head.train()
    idx = [4, 1, 1]
    samples = _samples(idx)
    torch.manual_seed(0)
    seg_logits = head.forward(_feats(head, 3))
    losses = head.loss_by_feat(seg_logits, samples)
    assert set(losses) == {'loss_scbce', 'acc_seg'}
    # the same as SCBCELoss on the resized logits with the gathered alphas
    from mmseg.models.utils import resize
    label = torch.stack([s.gt_sem_seg.data for s in samples])
    z = resize(seg_logits, size=label.shape[2:], mode='bilinear', align_corners=False)
    alpha = torch.tensor([0.4, 0.1, 0.1])
    ref = SCBCELoss(mode='expected')(z, label[:, 0], alpha=alpha)
    torch.testing.assert_close(losses['loss_scbce'], ref)
    # g of those very logits is kept for the hook, with the indices
    got_idx, got_g = head.aslp_pop()
    assert got_idx.tolist() == idx
    torch.testing.assert_close(got_g, aslp_gradient(z, label[:, 0]))
    assert head.aslp_pop() is None
    # gradients flow to the head's parameters, not into the alpha state
    losses['loss_scbce'].backward()
    assert head.conv_seg.weight.grad.abs().sum() > 0 and not head.alpha.requires_grad
    # eval mode keeps nothing; predict is the base head's
    head.eval()
    head.loss_by_feat(seg_logits.detach(), samples)
    assert head.aslp_pop() is None
    out = head.predict(_feats(head, 2), [dict(img_shape=(8, 8), pad_shape=(8, 8))] * 2, None)
    assert out.shape == (2, 1, 8, 8)


def head_cfg(head):
    """The plain head config matching the ASLP test heads."""
    if isinstance(head, UPerHead):
        return dict(in_channels=[4, 8], in_index=[0, 1], channels=4, pool_scales=(1, 2), num_classes=2,
                    out_channels=1, threshold=0.5, loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    return dict(in_channels=8, channels=4, num_convs=1, num_classes=2, out_channels=1, threshold=0.5,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))


def test_sample_mode_uses_the_batch_alphas():
    head = _fcn(loss_decode=dict(type='SCBCELoss', mode='sample'))
    with torch.no_grad():
        head.alpha.copy_(torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0]))
    samples = _samples([1, 3])
    seg_logits = head.forward(_feats(head, 2)).detach()
    # alpha 1 for both: every label flipped (HI) -> loss equals BCE against 1 - y
    loss = head.loss_by_feat(seg_logits, samples)['loss_scbce']
    from mmseg.models.utils import resize
    label = torch.stack([s.gt_sem_seg.data for s in samples])[:, 0]
    z = resize(seg_logits, size=label.shape[1:], mode='bilinear', align_corners=False)
    ref = SCBCELoss(mode='expected')(z, label, alpha=torch.ones(2))
    torch.testing.assert_close(loss, ref)
    with torch.no_grad():
        head.alpha.zero_()
    ref0 = SCBCELoss(mode='expected')(z, label, alpha=torch.zeros(2))
    torch.testing.assert_close(head.loss_by_feat(seg_logits, samples)['loss_scbce'], ref0)


def test_other_losses_beside_the_scbce_loss_are_called_as_usual():
    head = _fcn(num_samples=3, loss_decode=[dict(type='SCBCELoss', mode='expected'),
                                            dict(type='DiceLoss', use_sigmoid=True, loss_name='loss_dice')])
    samples = _samples([0, 2])
    losses = head.loss_by_feat(head.forward(_feats(head, 2)), samples)
    assert {'loss_scbce', 'loss_dice'} <= set(losses)


def test_keys_beside_head_override_its_entries_and_defaults_apply():
    # the form an mmseg:: base config produces: the base's decode_head keys merged next to head
    head = MODELS.build(dict(type='ASLPHead', head=dict(type='FCNHead', channels=16), in_channels=8, channels=4,
                             num_convs=1, loss_decode=dict(type='SCBCELoss'), num_samples=3, init_alpha=0.1))
    assert type(head) is type(_fcn())
    assert head.in_channels == 8 and head.channels == 4 and head.num_convs == 1
    assert head.out_channels == 1 and head.threshold == 0.5 and head.num_classes == 2  # ASLP's defaults
    assert head.alpha.tolist() == pytest.approx([0.1] * 3)
    assert type(head) is ASLPHead.wrapped_class(FCNHead)
    with pytest.raises(TypeError, match='extensions do not nest'):
        ASLPHead.wrapped_class(type(head))


def test_built_head_pickles_to_an_equal_head_of_the_same_class():
    head = _uper(init_alpha=0.2)
    with torch.no_grad():
        head.alpha[3] = 0.4
    again = pickle.loads(pickle.dumps(head))
    assert type(again) is type(head) and isinstance(again, UPerHead) and isinstance(again, ASLPHead)
    ref, got = head.state_dict(), again.state_dict()
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    # and it still works: the same loss on the same batch
    head.eval()
    again.eval()
    feats, samples = _feats(head, 2), _samples([3, 1])
    torch.testing.assert_close(again.loss_by_feat(again.forward(feats), samples)['loss_scbce'],
                               head.loss_by_feat(head.forward(feats), samples)['loss_scbce'])


def test_bad_configs_and_batches_raise_clear_errors():
    head = _fcn()
    feats = _feats(head, 2)
    with pytest.raises(KeyError, match="'sample_idx' to the meta_keys of PackSegInputs"):
        head.loss_by_feat(head.forward(feats), _samples([0, 1], with_idx=False))
    with pytest.raises(IndexError, match=r'sample_idx \[6\] outside the ASLP state of 6'):
        head.loss_by_feat(head.forward(feats), _samples([0, 6]))
    unsized = _fcn(num_samples=None)
    assert unsized.aslp_num_samples == 0
    with pytest.raises(RuntimeError, match="dict\\(type='ASLPHook'\\)"):
        unsized.loss_by_feat(unsized.forward(feats), _samples([0, 1]))
    with pytest.raises(ValueError, match='out_channels=1'):
        _fcn(out_channels=2)
    with pytest.raises(ValueError, match='exactly one SCBCELoss'):
        _fcn(loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    with pytest.raises(KeyError, match="head type 'NoSuchHead' is not a registered decode head"):
        _fcn(head=dict(type='NoSuchHead'))
    with pytest.raises(ValueError, match=r"needs the decode head to extend: head=dict\(type='FCNHead'"):
        MODELS.build(dict(type='ASLPHead', in_channels=8, channels=4, num_samples=3))
    with pytest.raises(ValueError, match='needs the decode head to extend'):
        _fcn(head=dict(in_channels=8))
    with pytest.raises(ValueError, match='init_alpha'):
        _fcn(init_alpha=1.5)


def test_alpha_state_is_sized_once_and_loads_only_matching_sizes():
    head = _fcn(num_samples=None, init_alpha=0.05)
    head.aslp_resize(4)
    assert head.alpha.tolist() == pytest.approx([0.05] * 4)
    ident = id(head.alpha)
    head.aslp_resize(4)
    assert id(head.alpha) == ident
    with pytest.raises(ValueError, match='holds 4 alphas but the training set has 5'):
        head.aslp_resize(5)
    state = head.state_dict()
    state['alpha'] = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.0, 0.0, 0.0])
    # an unsized head (testing, dump tools) adopts the checkpoint's size
    fresh = _fcn(num_samples=None)
    fresh.load_state_dict(state)
    assert fresh.alpha.tolist() == pytest.approx(state['alpha'].tolist())
    # a sized head refuses alphas of another training set, naming both sizes
    with pytest.raises(ValueError, match='holds 7 ASLP alphas.*this model has 4'):
        head.load_state_dict(state)
    # a checkpoint without alphas (e.g. the BCE baseline) leaves them at init_alpha
    del state['alpha']
    head.load_state_dict(state, strict=False)
    assert head.alpha.tolist() == pytest.approx([0.05] * 4)
