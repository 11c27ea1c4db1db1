"""OutputLayerClsHead (uqseg.cls.models.heads): mmpretrain's LinearClsHead with a uqseg output layer
as ``fc``, built through mmpretrain's MODELS inside an ImageClassifier (LeNet5 on 32x32 one-channel
input), its loss and predictions, the refusals, a plain head's checkpoint, and training through
mmengine's Runner (TEDL's stage 1 included)."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner, load_checkpoint, save_checkpoint
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

import uqseg.cls.models  # noqa: F401
from uqseg.cls.models.heads import OutputLayerClsHead
from uqseg.cls.models.losses import EDLLoss
from uqseg.core import edl_loss
from uqseg.core.output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer

pytestmark = pytest.mark.usefixtures('one_thread')

K = 4
LOSSES = {'EDLLayer': dict(type='EDLLoss', kl_anneal_iters=0), 'DisMaxLayer': dict(type='DisMaxLoss'),
          'IsoMaxPlusLayer': dict(type='DisMaxLoss')}
KINDS = {'EDLLayer': ('log_alpha', 'vacuity'), 'DisMaxLayer': ('distance_logits', 'MMLES'),
         'IsoMaxPlusLayer': ('distance_logits', 'MDS')}


def _head_cfg(layer='EDLLayer', **kw):
    cfg = dict(type='OutputLayerClsHead', num_classes=K, in_channels=120, output_layer=dict(type=layer),
               loss=LOSSES.get(layer, dict(type='EDLLoss')))
    return {**cfg, **kw}


def _model_cfg(head, **kw):
    return dict(type='ImageClassifier', backbone=dict(type='LeNet5'), neck=dict(type='GlobalAveragePooling'),
                head=head, **kw)


def _model(layer='EDLLayer', **head):
    m = MODELS.build(_model_cfg(_head_cfg(layer, **head)))
    m.init_weights()
    return m


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % K
    return torch.rand(n, 1, 32, 32, generator=g), [DataSample().set_gt_label(int(c)) for c in labels], labels


# ------------------------------------------------------------------------------ building, loss, predict
@pytest.mark.parametrize('layer,cls', [('EDLLayer', EDLLayer), ('DisMaxLayer', DisMaxLayer),
                                       ('IsoMaxPlusLayer', IsoMaxPlusLayer)])
def test_builds_in_an_image_classifier_and_predicts_softmax_of_the_layer(layer, cls):
    m = _model(layer)
    head = m.head
    assert isinstance(head, OutputLayerClsHead) and type(head.fc) is cls
    assert head.fc.in_channels == 120 and head.fc.num_classes == K
    x, samples, labels = _batch()
    losses = m(x, samples, mode='loss')
    assert set(losses) == {'loss'} and losses['loss'].dim() == 0 and torch.isfinite(losses['loss'])
    z = m(x, mode='tensor')
    assert z.shape == (6, K)
    preds = m(x, [DataSample() for _ in range(6)], mode='predict')
    kind, own = KINDS[layer]
    for i, p in enumerate(preds):
        assert torch.equal(p.pred_logits, z[i].detach())
        assert torch.allclose(p.pred_score, torch.softmax(z[i], 0), atol=1e-6)
        assert p.pred_label.item() == int(z[i].argmax())
        assert p.output_kind == kind and p.default_score == own and p.num_classes == K
    if layer == 'EDLLayer':  # softmax(log alpha) = alpha / S
        alpha = z.detach().exp()
        assert torch.allclose(torch.stack([p.pred_score for p in preds]), alpha / alpha.sum(1, keepdim=True),
                              atol=1e-6)
        assert bool((z >= 0).all())
    else:  # distance logits L / T <= 0
        assert bool((z <= 1e-6).all())
    # the loss is the head's loss on the layer's outputs
    crit = head.loss_module
    assert losses['loss'].item() == pytest.approx(crit(z, labels).item(), rel=1e-5)
    # predict without data samples
    assert len(m.head.predict((torch.randn(3, 120),))) == 3


def test_output_layer_arguments_pass_through_and_sizes_come_from_the_head():
    h = MODELS.build(_head_cfg('EDLLayer', output_layer=dict(type='EDLLayer', evidence='elu', in_channels=120,
                                                              num_classes=K)))
    assert h.fc.evidence == 'elu'
    h = MODELS.build(_head_cfg('DisMaxLayer', output_layer=dict(type='DisMaxLayer', temperature=2.0)))
    assert float(h.fc.temperature) == 2.0


@pytest.mark.parametrize('kw,err,match', [
    (dict(output_layer='EDLLayer'), ValueError, r"OutputLayerClsHead needs output_layer=dict\(type="),
    (dict(output_layer=None), ValueError, 'loss EDLLoss needs an output layer of type EDLLayer, not Linear'),
    (dict(dropout=1.0), ValueError, r'OutputLayerClsHead: dropout must be a probability in \[0, 1\), got 1.0'),
    (dict(output_layer=dict(evidence='relu')), ValueError, 'OutputLayerClsHead needs output_layer'),
    (dict(output_layer=dict(type='EDLLayer', in_channels=64)), ValueError,
     r'OutputLayerClsHead: output_layer.in_channels=64 but the head has in_channels=120'),
    (dict(output_layer=dict(type='EDLLayer', num_classes=3)), ValueError,
     r'output_layer.num_classes=3 but the head has num_classes=4'),
    (dict(output_layer=dict(type='NoSuchLayer')), KeyError, 'is not registered'),
    (dict(loss=dict(type='CrossEntropyLoss')), ValueError,
     r"OutputLayerClsHead: EDLLayer trains with EDLLoss, but the head's loss is CrossEntropyLoss"),
    (dict(loss=dict(type='DisMaxLoss')), ValueError, r'EDLLayer trains with EDLLoss, but .* DisMaxLoss'),
    (dict(output_layer=dict(type='DisMaxLayer'), loss=dict(type='EDLLoss')), ValueError,
     'DisMaxLayer trains with DisMaxLoss'),
    (dict(output_layer=dict(type='IsoMaxPlusLayer'), loss=dict(type='CrossEntropyLoss')), ValueError,
     'IsoMaxPlusLayer trains with DisMaxLoss'),
    (dict(output_layer=dict(type='EDLLayer'), loss=edl_loss.EDLLoss()), TypeError,
     r"the mmseg registration .* default_scope='mmpretrain' or write loss=dict\(type='mmpretrain.EDLLoss'"),
])
def test_refusals_name_the_head_and_the_fix(kw, err, match):
    with pytest.raises(err, match=match):
        MODELS.build(_head_cfg('EDLLayer', **kw))


def test_a_loss_refuses_the_other_layer_family():
    # the DisMax loss with an EDL layer is refused by the layer's own rule first; the reverse check
    # (a loss without its layer) is reached when the layer needs no particular loss
    h = MODELS.build(_head_cfg('DisMaxLayer'))
    h.fc = EDLLayer(120, K)
    with pytest.raises(ValueError, match='EDLLayer trains with EDLLoss'):
        h._check_loss()
    h.loss_module = EDLLoss()
    h._check_loss()
    h.fc = torch.nn.Identity()
    with pytest.raises(ValueError, match='OutputLayerClsHead: loss EDLLoss needs an output layer of type EDLLayer, '
                                         'not Identity'):
        h._check_loss()


def test_feature_maps_are_refused_with_the_pooling_hint():
    m = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='LeNet5'), head=_head_cfg()))
    with pytest.raises(ValueError, match=r"needs \(N, 120\) features, got \(2, 120, 1, 1\).*GlobalAveragePooling"):
        m(torch.rand(2, 1, 32, 32), mode='tensor')


# ------------------------------------------------------------------------------ initialisation and checkpoints
def test_init_weights_runs_the_layers_own_initialisation_after_mmengines():
    h = MODELS.build(_head_cfg('EDLLayer', init_cfg=dict(type='Constant', layer='Conv2d', val=3.0)))
    with torch.no_grad():
        h.fc.weight.fill_(7.0)
        h.fc.bias.fill_(7.0)
    h.init_weights()
    assert float(h.fc.bias.detach().abs().max()) == 0.0 and 0.005 < float(h.fc.weight.detach().std()) < 0.02
    d = MODELS.build(_head_cfg('DisMaxLayer'))
    with torch.no_grad():
        d.fc.prototypes.fill_(5.0)
        d.fc.distance_scale.fill_(9.0)
    d.init_weights()
    assert 0.5 < float(d.fc.prototypes.detach().std()) < 2 and float(d.fc.distance_scale.detach()) == 1.0


def test_a_pretrained_init_cfg_of_the_head_loads_into_the_layer(tmp_path):
    src = MODELS.build(_head_cfg('DisMaxLayer'))
    path = str(tmp_path / 'head.pth')
    save_checkpoint({'state_dict': src.state_dict()}, path)
    h = MODELS.build(_head_cfg('DisMaxLayer', init_cfg=dict(type='Pretrained', checkpoint=path)))
    h.init_weights()
    assert torch.equal(h.fc.prototypes, src.fc.prototypes)


def test_a_plain_linear_cls_head_checkpoint_loads_into_the_edl_head(tmp_path):
    plain = MODELS.build(_model_cfg(dict(type='LinearClsHead', num_classes=K, in_channels=120)))
    plain.init_weights()
    with torch.no_grad():
        plain.head.fc.weight.normal_(0, 1)
        plain.head.fc.bias.normal_(0, 1)
    path = str(tmp_path / 'plain.pth')
    save_checkpoint({'state_dict': plain.state_dict()}, path)
    edl = _model('EDLLayer')
    assert set(edl.state_dict()) == set(plain.state_dict()) | {'head.fc.evidential'}
    load_checkpoint(edl, path, strict=True)
    assert torch.equal(edl.head.fc.weight[:, :, 0, 0], plain.head.fc.weight)
    assert torch.equal(edl.head.fc.bias, plain.head.fc.bias)
    x = torch.rand(3, 1, 32, 32)
    f = plain(x, mode='tensor')
    assert torch.allclose(edl(x, mode='tensor'), torch.log1p(F.relu(f)), atol=1e-6)
    edl.head.fc.set_evidential(False)
    assert torch.allclose(edl(x, mode='tensor'), f, atol=1e-6)


# ------------------------------------------------------------------------------ the EDL loss's iteration and stage
def test_the_head_gives_the_edl_loss_the_iteration_and_the_layers_stage():
    m = _model('EDLLayer', loss=dict(type='EDLLoss', kl_anneal_iters=10))
    crit = m.head.loss_module
    x, samples, labels = _batch()
    hub = MessageHub.get_current_instance()
    old = hub.get_info('iter', 0)
    try:
        hub.update_info('iter', 7)
        loss = m(x, samples, mode='loss')['loss']
        assert crit.step == 7 and crit.evidential and crit.kl_factor() == pytest.approx(0.7)
        assert loss.item() == pytest.approx(edl_loss.EDLLoss(kl_anneal_iters=0, kl_weight=0.7)(
            m(x, mode='tensor'), labels).item(), rel=1e-5)
        # TEDL stage 1: the layer's plain logits, cross-entropy
        m.head.fc.set_evidential(False)
        with pytest.warns(UserWarning, match='no TEDLHook switches it'):
            loss = m(x, samples, mode='loss')['loss']
        assert not crit.evidential
        assert loss.item() == pytest.approx(F.cross_entropy(m(x, mode='tensor'), labels).item(), rel=1e-5)
        preds = m(x, [DataSample() for _ in range(6)], mode='predict')
        assert preds[0].output_kind == 'logits' and preds[0].default_score == 'max-prob'
        # a schedule (TEDL's hook) marks the layer: no warning
        m2 = _model('EDLLayer')
        m2.head.fc.set_evidential(False)
        m2.head.fc.stage_scheduled = True
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            m2(x, samples, mode='loss')
        assert not m2.head.loss_module.evidential
        m.head.fc.set_evidential(True)
        m(x, samples, mode='loss')
        assert crit.evidential
    finally:
        hub.update_info('iter', old)


# ------------------------------------------------------------------------------ training through mmengine's Runner
class _Squares(Dataset):
    """``n`` 1x32x32 images: class ``c`` is a bright 8x8 square at the ``c``-th of four places, on noise.
    A fresh DataSample per item (the preprocessor writes gt_score into it)."""

    def __init__(self, n=32, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % K
        self.images = 0.2 * torch.rand(n, 1, 32, 32, generator=g)
        for i, c in enumerate(self.labels.tolist()):
            r, col = divmod(c, 2)
            self.images[i, 0, 4 + 16 * r:12 + 16 * r, 4 + 16 * col:12 + 16 * col] += 1.0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return dict(inputs=self.images[i].clone(), data_samples=DataSample().set_gt_label(int(self.labels[i])))


class _Record(Hook):
    def __init__(self):
        self.losses, self.evidential = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(float(outputs['loss'].detach()))
        loss = runner.model.head.loss_module
        self.evidential.append(getattr(loss, 'evidential', None))


def _train(tmp_path, name, head, iters=40, lr=0.05, **model_kw):
    rec = _Record()
    runner = Runner(
        model=_model_cfg(head, **model_kw), work_dir=str(tmp_path / name), experiment_name=f'cls_head_{name}',
        train_dataloader=dict(dataset=_Squares(), sampler=dict(type='InfiniteSampler', shuffle=True), batch_size=8,
                              num_workers=0, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10 ** 6, by_epoch=False, save_last=False),
                           logger=dict(type='LoggerHook', interval=10 ** 6)),
        custom_hooks=[rec], default_scope='mmpretrain', randomness=dict(seed=0), log_level='WARNING')
    runner.train()
    return runner, rec


def _decreases(losses, n=8):
    first, last = sum(losses[:n]) / n, sum(losses[-n:]) / n
    return all(math.isfinite(v) for v in losses) and last < first


@pytest.mark.parametrize('layer', ['EDLLayer', 'DisMaxLayer'])
def test_a_few_runner_iterations_train_the_head(tmp_path, layer):
    runner, rec = _train(tmp_path, layer, _head_cfg(layer, loss={**LOSSES[layer]}))
    assert len(rec.losses) == 40 and _decreases(rec.losses), rec.losses
    x = torch.stack([_Squares()[i]['inputs'] for i in range(8)])
    preds = runner.model(x, mode='tensor').argmax(1)
    assert (preds == _Squares().labels[:8]).float().mean() >= 0.5


def test_tedl_stage_one_trains_with_the_edl_loss_in_its_cross_entropy_stage(tmp_path):
    head = _head_cfg('EDLLayer', output_layer=dict(type='EDLLayer', evidence='elu', evidential=False),
                     loss=dict(type='EDLLoss', kl_anneal_iters=0))
    with pytest.warns(UserWarning, match='no TEDLHook'):
        runner, rec = _train(tmp_path, 'tedl1', head, iters=30)
    assert rec.evidential == [False] * 30 and _decreases(rec.losses), rec.losses
    assert runner.model.head.output_kind == 'logits'
