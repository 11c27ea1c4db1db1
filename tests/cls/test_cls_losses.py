"""uqseg.cls.models.losses: the core's EDL, DisMax and LDL losses in mmpretrain's MODELS, called as
mmpretrain's ClsHead calls a loss (``loss(cls_score, target, avg_factor=N, **kwargs)``), with labels
(N,) or soft targets (N, K) and no ignore index; checked against torch's own losses."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import uqseg.cls.models  # noqa: F401
from uqseg.cls.models.losses import DisMaxLoss, EDLLoss, LDLLoss
from uqseg.core import dismax_loss, edl_loss, ldl_loss
from uqseg.core.checks import LabelRangeError

pytestmark = pytest.mark.usefixtures('one_thread')


def _rows(n=6, k=4, seed=0, sign=1.0):
    g = torch.Generator().manual_seed(seed)
    return sign * torch.rand(n, k, generator=g, dtype=torch.float64)


def _soft(n, k, seed=1):
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(n, k, generator=g, dtype=torch.float64)
    return q / q.sum(1, keepdim=True)


@pytest.mark.parametrize('name,core,loss_name', [('EDLLoss', edl_loss.EDLLoss, 'loss_edl'),
                                                 ('DisMaxLoss', dismax_loss.DisMaxLoss, 'loss_dismax'),
                                                 ('LDLLoss', ldl_loss.LDLLoss, 'loss_ldl')])
def test_registered_in_mmpretrain_as_thin_subclasses_of_the_core(name, core, loss_name):
    loss = MODELS.build(dict(type=name))
    assert type(loss).__name__ == name and type(loss).__module__ == 'uqseg.cls.models.losses'
    assert isinstance(loss, core) and loss.loss_name == loss_name
    # the core's argument checks, naming the class
    with pytest.raises(TypeError, match=f"{name} got unknown argument"):
        MODELS.build(dict(type=name, use_sigmoid=False))


def test_mmpretrain_call_with_labels_is_the_mean_over_the_batch():
    z, y = _rows(sign=-1), torch.tensor([0, 3, 1, 2, 2, 0])
    got = DisMaxLoss()(z, y, avg_factor=6)
    assert got.item() == pytest.approx(F.cross_entropy(10 * z, y).item(), rel=1e-12)
    assert DisMaxLoss()(z, y).item() == pytest.approx(got.item(), rel=1e-12)  # no avg_factor: the mean
    f = _rows(seed=2)
    stage1 = EDLLoss()
    stage1.evidential = False
    assert stage1(f, y, avg_factor=6).item() == pytest.approx(F.cross_entropy(f, y).item(), rel=1e-12)
    edl = EDLLoss(kl_anneal_iters=0)
    assert edl(f, y, avg_factor=6).item() == pytest.approx(edl_loss.EDLLoss(kl_anneal_iters=0)(f, y).item(),
                                                           rel=1e-12)
    assert LDLLoss(teacher_weight=0)(f, y, avg_factor=6).item() == pytest.approx(F.cross_entropy(f, y).item(),
                                                                                 rel=1e-12)


def test_avg_factor_weight_and_reductions_follow_mmpretrain():
    z, y = _rows(sign=-1, seed=3), torch.tensor([0, 3, 1, 2, 2, 0])
    per_row = F.cross_entropy(10 * z, y, reduction='none')
    w = torch.tensor([1.0, 0.5, 0.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    crit = DisMaxLoss(loss_weight=2.0)
    assert crit(z, y, avg_factor=4).item() == pytest.approx(2 * per_row.sum().item() / 4, rel=1e-12)
    assert crit(z, y, weight=w, avg_factor=6).item() == pytest.approx(2 * (per_row * w).sum().item() / 6, rel=1e-12)
    assert torch.allclose(crit(z, y, reduction_override='none'), 2 * per_row, rtol=1e-12)
    assert crit(z, y, reduction_override='sum').item() == pytest.approx(2 * per_row.sum().item(), rel=1e-12)
    with pytest.raises(ValueError, match="DisMaxLoss: reduction_override must be 'none', 'mean' or 'sum'"):
        crit(z, y, reduction_override='max')
    with pytest.raises(ValueError, match='DisMaxLoss: avg_factor must be > 0'):
        crit(z, y, avg_factor=0)


def test_no_ignore_index_label_255_is_a_class_and_labels_outside_raise():
    k = 300
    z = -torch.rand(4, k, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = torch.tensor([255, 0, 299, 255])
    got = DisMaxLoss()(z, y, avg_factor=4)
    assert got.item() == pytest.approx(F.cross_entropy(10 * z, y).item(), rel=1e-12)  # every row counts
    for crit in (DisMaxLoss(), EDLLoss(), LDLLoss(teacher_weight=0)):
        name = type(crit).__name__
        zz = z[:, :10].abs() if name != 'DisMaxLoss' else z[:, :10]
        with pytest.raises(LabelRangeError, match=rf'{name}: labels must be class indices 0..9 \(classification has '
                                                  r'no ignore_index: every index is a class\); got \[255\] '
                                                  r'\(sample 0 of the batch\)'):
            crit(zz, y.clamp(max=255), avg_factor=4)
        with pytest.raises(LabelRangeError, match=r'got \[-1\] \(sample 2'):
            crit(zz, torch.tensor([0, 1, -1, 2]))
        with pytest.raises(TypeError, match=rf'{name} got unexpected keyword argument\(s\) \[\'ignore_index\'\] '
                                            r'\(classification has no ignore_index'):
            crit(zz, torch.tensor([0, 1, 1, 2]), ignore_index=255)
        with pytest.raises(ValueError, match=f'{name}: labels must be integer class indices'):
            crit(zz, torch.tensor([0.0, 1.0, 1.0, 2.0]))


def test_soft_targets_from_the_batch_augments():
    q = _soft(6, 4)
    z = _rows(sign=-1, seed=5)
    kl = (q * (q.log() - torch.log_softmax(10 * z, 1))).sum(1)
    assert DisMaxLoss()(z, q, avg_factor=6).item() == pytest.approx(kl.mean().item(), rel=1e-12)
    f = _rows(seed=6)
    assert EDLLoss(kl_anneal_iters=0)(f, q, avg_factor=6).item() == pytest.approx(
        edl_loss.EDLLoss(kl_anneal_iters=0)(f, q).item(), rel=1e-12)
    t = _rows(seed=7)
    target = 0.5 * q + 0.5 * t.softmax(1)
    assert LDLLoss()(f, q, avg_factor=6, teacher_logits=t).item() == pytest.approx(
        F.cross_entropy(f, target).item(), rel=1e-12)
    with pytest.raises(ValueError, match='DisMaxLoss: soft targets must sum to 1'):
        DisMaxLoss()(z, q * 2)


def test_ldl_takes_teacher_logits_and_the_step_through_mmpretrains_head():
    head = MODELS.build(dict(type='LinearClsHead', num_classes=4, in_channels=5,
                             loss=dict(type='LDLLoss', teacher_weight=0.8, warmup_iters=10)))
    assert isinstance(head.loss_module, LDLLoss)
    g = torch.Generator().manual_seed(8)
    feats = torch.randn(3, 5, generator=g)
    t = torch.randn(3, 4, generator=g)
    samples = [DataSample().set_gt_label(c) for c in (0, 3, 1)]
    got = head.loss((feats,), samples, teacher_logits=t, step=5)['loss']
    assert head.loss_module.step == 5
    z = head(((feats,)))
    target = 0.6 * F.one_hot(torch.tensor([0, 3, 1]), 4).float() + 0.4 * t.softmax(1)
    assert got.item() == pytest.approx(F.cross_entropy(z, target).item(), rel=1e-5)
    # soft gt_score (a batch augment ran): stacked (N, K) targets
    q = _soft(3, 4, seed=9).float()
    for s, row in zip(samples, q):
        s.set_gt_score(row)
    got = head.loss((feats,), samples, teacher_logits=t)['loss']
    assert got.item() == pytest.approx(F.cross_entropy(z, 0.6 * q + 0.4 * t.softmax(1)).item(), rel=1e-5)
    with pytest.raises(RuntimeError, match='LDLLoss has no teacher logits'):
        head.loss((feats,), samples)
    with pytest.raises(TypeError, match=r"LDLLoss got unexpected keyword argument\(s\) \['teacher'\]"):
        head.loss((feats,), samples, teacher=t)
