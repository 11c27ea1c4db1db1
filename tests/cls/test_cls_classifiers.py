"""uqseg.cls.models.classifiers, built through mmpretrain's MODELS (LeNet5 on 32x32 one-channel input).

TemperatureScaledImageClassifier: ``pred_score`` is ``softmax(z / T)`` of the raw head scores ``z``
(scalar and per-class ``T``), checked against a plain ``ImageClassifier`` holding the same weights;
``tensor`` mode gives ``z``; a checkpoint's ``state_dict['temperature']`` (mmengine's
``save_checkpoint`` or ``torch.save``) replaces the config's ``T`` with a warning; ``temperature=None``
refuses to predict until one is loaded; EDL heads and bad ``T`` are refused.

LDLImageClassifier: the loss is the cross-entropy, computed here with ``F.cross_entropy`` on
probability targets, of the student's scores to ``(1 - w) q + w softmax(t)``, ``q`` the one-hot (or
Mixup ``gt_score``) label and ``t`` the teacher's scores on the same inputs in eval mode (a teacher
with BatchNorm, whose train-mode scores differ); the teacher is outside the module tree.
"""
import math
import uuid
import warnings

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.runner import load_checkpoint, save_checkpoint
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import uqseg.cls  # noqa: F401  (registers the classifiers)
from uqseg.cls.models.classifiers import LDLImageClassifier, TemperatureScaledImageClassifier
from uqseg.core.temperature_kinds import TEMPERATURE_KINDS, check_temperature_kind

pytestmark = pytest.mark.usefixtures('one_thread')

K = 4
BACKBONE = dict(type='LeNet5')
NECK = dict(type='GlobalAveragePooling')


def _head(loss=None, **kw):
    return dict(type='LinearClsHead', num_classes=K, in_channels=120,
                loss=loss or dict(type='CrossEntropyLoss', loss_weight=1.0), **kw)


def _build(type_='TemperatureScaledImageClassifier', head=None, seed=0, **kw):
    torch.manual_seed(seed)
    model = MODELS.build(dict(type=type_, backbone=BACKBONE, neck=NECK, head=head or _head(), **kw))
    model.init_weights()
    if isinstance(getattr(model.head.fc, 'weight', None), torch.Tensor) and model.head.fc.weight.dim() == 2:
        with torch.no_grad():  # scores far from uniform (mmpretrain's init: std 0.01), so differences show
            model.head.fc.weight.normal_(0, 1.0)
    return model


def _plain_copy(model):
    """A plain mmpretrain ImageClassifier with ``model``'s weights (the reference)."""
    plain = MODELS.build(dict(type='ImageClassifier', backbone=BACKBONE, neck=NECK, head=_head()))
    plain.load_state_dict(model.state_dict(), strict=True)
    return plain.eval()


def _inputs(n=6, seed=0):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def _samples(labels):
    return [DataSample().set_gt_label(int(c)) for c in labels]


def _pred_scores(model, x):
    with torch.no_grad():
        preds = model(x, [DataSample() for _ in range(len(x))], mode='predict')
    return torch.stack([p.pred_score for p in preds]), torch.stack([p.pred_label for p in preds]).reshape(-1)


def _ckpt_with_temperature(model, path, temperature, writer='mmengine'):
    state = dict(model.state_dict())
    state['temperature'] = torch.as_tensor(temperature, dtype=torch.float32)
    if writer == 'mmengine':
        save_checkpoint(dict(meta=dict(), state_dict=state), str(path))
    else:
        torch.save(dict(state_dict=state), str(path))
    return str(path)


# ------------------------------------------------------------------------------ TemperatureScaledImageClassifier
@pytest.mark.parametrize('temperature', [2.0, 0.5, [1.0, 2.0, 0.5, 4.0]])
def test_pred_score_is_the_softmax_of_the_raw_scores_over_t(temperature):
    model = _build(temperature=temperature).eval()
    plain = _plain_copy(model)
    x = _inputs()
    with torch.no_grad():
        z = model(x, mode='tensor')
        torch.testing.assert_close(z, plain(x, mode='tensor'), rtol=0, atol=0)  # tensor mode: the raw scores
        z_hand = plain.head.fc(plain.neck(plain.backbone(x))[-1])
    torch.testing.assert_close(z, z_hand)
    t = torch.as_tensor(temperature, dtype=torch.float32)
    want = torch.softmax(z / t, dim=1)  # broadcasting over the class dimension for per-class T
    score, label = _pred_scores(model, x)
    torch.testing.assert_close(score, want, rtol=1e-6, atol=1e-7)
    assert torch.equal(label, want.argmax(1))
    plain_score, _ = _pred_scores(plain, x)
    assert not torch.allclose(score, plain_score, atol=1e-4)  # the temperature changed the scores
    assert model.temperature.shape == t.shape
    assert 'temperature' not in model.state_dict()  # training checkpoints carry no T


def test_temperature_one_predicts_as_the_plain_classifier():
    model = _build(temperature=1.0).eval()
    x = _inputs()
    torch.testing.assert_close(_pred_scores(model, x)[0], _pred_scores(_plain_copy(model), x)[0])


def test_training_loss_is_the_unscaled_cross_entropy():
    model = _build(temperature=3.0)
    x, labels = _inputs(), torch.arange(6) % K
    loss = model(x, _samples(labels), mode='loss')['loss']
    with torch.no_grad():
        z = model(x, mode='tensor')
    torch.testing.assert_close(loss.detach(), F.cross_entropy(z, labels))


@pytest.mark.parametrize('writer', ['mmengine', 'torch'])
def test_checkpoint_temperature_replaces_the_configs_with_a_warning(tmp_path, writer):
    trained = _build(seed=1)
    path = _ckpt_with_temperature(trained, tmp_path / 'calibrated.pth', 2.5, writer)
    model = _build(temperature=1.0, seed=2)
    with pytest.warns(UserWarning, match=r"holds temperature 2\.5.*replaces the config's 1\.0"):
        if writer == 'mmengine':
            load_checkpoint(model, path, map_location='cpu', strict=True)
        else:
            model.load_state_dict(torch.load(path, weights_only=True)['state_dict'], strict=True)
    assert float(model.temperature) == 2.5
    model.eval()
    x = _inputs()
    with torch.no_grad():
        z = model(x, mode='tensor')
        torch.testing.assert_close(z, trained.eval()(x, mode='tensor'))  # the weights were loaded too
    torch.testing.assert_close(_pred_scores(model, x)[0], torch.softmax(z / 2.5, 1), rtol=1e-6, atol=1e-7)


def test_checkpoint_per_class_temperature_replaces_a_scalar(tmp_path):
    trained = _build(seed=1)
    t = [0.5, 1.0, 2.0, 3.0]
    path = _ckpt_with_temperature(trained, tmp_path / 'calibrated.pth', t)
    model = _build(temperature=1.0)
    with pytest.warns(UserWarning, match='replaces the config'):
        load_checkpoint(model, path, map_location='cpu', strict=True)
    assert model.temperature.tolist() == t
    assert 'temperature' not in model.state_dict()  # still not persistent
    model.eval()
    x = _inputs()
    with torch.no_grad():
        z = model(x, mode='tensor')
    torch.testing.assert_close(_pred_scores(model, x)[0], torch.softmax(z / torch.tensor(t), 1))


def test_the_same_temperature_loads_without_a_warning(tmp_path):
    model = _build(temperature=2.0)
    path = _ckpt_with_temperature(model, tmp_path / 'calibrated.pth', 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_checkpoint(_build(temperature=2.0), path, map_location='cpu', strict=True)


def test_a_training_checkpoint_keeps_the_configs_temperature(tmp_path):
    trained = _build(seed=1)
    save_checkpoint(dict(meta=dict(), state_dict=trained.state_dict()), str(tmp_path / 'train.pth'))
    model = _build(temperature=1.7)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_checkpoint(model, str(tmp_path / 'train.pth'), map_location='cpu', strict=True)
    assert math.isclose(float(model.temperature), 1.7, rel_tol=1e-6)


def test_temperature_none_refuses_to_predict_until_loaded(tmp_path):
    model = _build(temperature=None).eval()
    x = _inputs()
    with pytest.raises(RuntimeError, match='uqseg calibrate'):
        _pred_scores(model, x)
    assert model(x, mode='tensor').shape == (6, K)  # tensor mode and training need no T
    model.train()
    assert torch.isfinite(model(x, _samples(torch.arange(6) % K), mode='loss')['loss'])
    # a training checkpoint holds no T: still refused
    save_checkpoint(dict(meta=dict(), state_dict=model.state_dict()), str(tmp_path / 'train.pth'))
    load_checkpoint(model, str(tmp_path / 'train.pth'), map_location='cpu', strict=True)
    model.eval()
    with pytest.raises(RuntimeError, match="needs T from a checkpoint written by uqseg calibrate"):
        _pred_scores(model, x)
    # a calibrated one: no warning (nothing configured to replace), predictions scaled
    path = _ckpt_with_temperature(model, tmp_path / 'calibrated.pth', 0.8)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_checkpoint(model, path, map_location='cpu', strict=True)
    with torch.no_grad():
        z = model(x, mode='tensor')
    torch.testing.assert_close(_pred_scores(model, x)[0], torch.softmax(z / 0.8, 1))


def test_an_edl_head_is_refused():
    head = dict(type='OutputLayerClsHead', num_classes=K, in_channels=120,
                output_layer=dict(type='EDLLayer', evidence='relu'), loss=dict(type='EDLLoss'))
    with pytest.raises(ValueError, match='TemperatureScaledImageClassifier.*log alpha'):
        _build(head=head)


def test_an_edl_head_that_becomes_evidential_is_refused_at_predict():
    """A TEDL stage-1 layer (evidential=False: plain logits) may be scaled, but once a stage-2 checkpoint
    (or TEDLHook) turns it into log alpha, predict must refuse as the constructor does, not divide
    log alpha by T. (Fails with the lead's code of this issue: the check runs in __init__ only.)"""
    head = dict(type='OutputLayerClsHead', num_classes=K, in_channels=120,
                output_layer=dict(type='EDLLayer', evidence='elu', evidential=False), loss=dict(type='EDLLoss'))
    model = _build(head=head, temperature=2.0).eval()
    x = _inputs()
    with torch.no_grad():
        z = model(x, mode='tensor')
    torch.testing.assert_close(_pred_scores(model, x)[0], torch.softmax(z / 2.0, 1))  # stage 1: logits
    stage2 = _build('ImageClassifier', head=dict(head, output_layer=dict(type='EDLLayer', evidence='elu')))
    model.load_state_dict(stage2.state_dict(), strict=True)
    assert model.head.output_kind == 'log_alpha'
    with pytest.raises(ValueError, match='log alpha'):
        _pred_scores(model, x)


@pytest.mark.parametrize('layer', ['DisMaxLayer', 'IsoMaxPlusLayer'])
def test_distance_heads_are_scaled(layer):
    head = dict(type='OutputLayerClsHead', num_classes=K, in_channels=120, output_layer=dict(type=layer),
                loss=dict(type='DisMaxLoss'))
    model = _build(head=head, temperature=2.0).eval()
    x = _inputs()
    with torch.no_grad():
        z = model(x, mode='tensor')
        preds = model(x, [DataSample() for _ in range(6)], mode='predict')
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]), torch.softmax(z / 2.0, 1))


@pytest.mark.parametrize('layer,loss', [(None, None), ('EDLLayer', 'EDLLoss'), ('DisMaxLayer', 'DisMaxLoss'),
                                        ('IsoMaxPlusLayer', 'DisMaxLoss')])
def test_the_scaled_classifier_follows_the_core_rule_of_scalable_kinds(layer, loss):
    """One rule (uqseg.core.temperature_kinds, also uqseg eval-selective --fit-temperature's): a
    head is scaled iff its output kind is in TEMPERATURE_KINDS, and refused with the rule's message."""
    head = _head() if layer is None else dict(type='OutputLayerClsHead', num_classes=K, in_channels=120,
                                              output_layer=dict(type=layer), loss=dict(type=loss))
    kind = getattr(_build('ImageClassifier', head=head).head.fc, 'output_kind', 'logits')
    if kind in TEMPERATURE_KINDS:
        assert isinstance(_build(head=head, temperature=2.0), TemperatureScaledImageClassifier)
        return
    with pytest.raises(ValueError) as err:
        _build(head=head, temperature=2.0)
    with pytest.raises(ValueError) as rule:
        check_temperature_kind(kind, 'TemperatureScaledImageClassifier', 'the head OutputLayerClsHead outputs')
    assert str(err.value) == str(rule.value) and kind == 'log_alpha'


@pytest.mark.parametrize('temperature', [0.0, -1.0, float('nan'), float('inf'), [1.0, 0.0, 1.0, 1.0],
                                         [1.0, float('nan'), 1.0, 1.0], [[1.0]], []])
def test_bad_temperatures_are_refused(temperature):
    with pytest.raises(ValueError, match='temperature'):
        _build(temperature=temperature)


@pytest.mark.parametrize('temperature', [[1.0, 2.0], [1.0] * (K + 1)])
def test_a_wrong_number_of_per_class_temperatures_is_refused(temperature):
    with pytest.raises(ValueError, match=f'{len(temperature)} per-class temperatures for a head of {K}'):
        _build(temperature=temperature)


@pytest.mark.parametrize('bad,match', [([1.0, 2.0], '2 per-class temperatures for a head of 4'),
                                       (0.0, 'must be a finite number > 0'),
                                       (float('nan'), 'must be a finite number > 0')])
def test_a_bad_checkpoint_temperature_is_refused(tmp_path, bad, match):
    model = _build()
    path = _ckpt_with_temperature(model, tmp_path / 'bad.pth', bad)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(_build(), path, map_location='cpu', strict=True)


# ------------------------------------------------------------------------------ LDLImageClassifier
def _ldl(teacher_weight=0.5, **loss):
    return _build('LDLImageClassifier', head=_head(loss=dict(type='LDLLoss', teacher_weight=teacher_weight, **loss)))


def _teacher(seed=3):
    """A teacher of another architecture with BatchNorm (train-mode scores differ from eval-mode ones)."""
    torch.manual_seed(seed)
    teacher = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1, stem_channels=8, base_channels=8,
                      out_indices=(3, )),
        neck=NECK, head=dict(type='LinearClsHead', num_classes=K, in_channels=64)))
    teacher.init_weights()
    with torch.no_grad():  # scores far from uniform, so that the teacher's mode and weight show in the loss
        teacher.head.fc.weight.normal_(0, 1.0)
    return teacher.train()


@pytest.fixture
def fresh_hub():
    """A MessageHub of its own as the current instance (the classifier reads the iteration from it);
    a blank one is made current again afterwards."""
    hub = MessageHub.get_instance(f'test_cls_classifiers_{uuid.uuid4().hex}')
    yield hub
    MessageHub.get_instance(f'test_cls_classifiers_{uuid.uuid4().hex}')


def _hand_ldl_loss(z, teacher, x, q, w, tau=1.0):
    teacher = teacher.eval()
    with torch.no_grad():
        t = teacher(x, mode='tensor')
    target = (1 - w) * q + w * torch.softmax(t / tau, 1)
    return F.cross_entropy(z, target)  # probability targets: -sum(target * log_softmax(z)) averaged


@pytest.mark.parametrize('teacher_weight', [0.5, 1.0])
def test_ldl_loss_is_the_cross_entropy_to_the_mixed_target(teacher_weight, fresh_hub):
    model = _ldl(teacher_weight)
    teacher = _teacher()
    model.set_teacher(teacher)
    x, labels = _inputs(8), torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    loss = model(x, _samples(labels), mode='loss')['loss']
    assert not teacher.training  # run in eval mode
    z = model(x, mode='tensor')
    want = _hand_ldl_loss(z.detach(), teacher, x, F.one_hot(labels, K).float(), teacher_weight)
    torch.testing.assert_close(loss.detach(), want, rtol=1e-5, atol=1e-6)
    # the teacher's train-mode scores (batch statistics) would give another loss
    teacher.train()
    with torch.no_grad():
        t_train = teacher(x, mode='tensor')
    wrong = F.cross_entropy(z.detach(), (1 - teacher_weight) * F.one_hot(labels, K).float()
                            + teacher_weight * t_train.softmax(1))
    assert not torch.allclose(wrong, want, atol=1e-4)
    # the gradient reaches the student only
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.head.fc.weight.grad is not None and model.head.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('teacher_weight', [0.5, 1.0])
def test_ldl_loss_with_mixup_soft_labels(teacher_weight, fresh_hub):
    model = _ldl(teacher_weight)
    teacher = _teacher()
    model.set_teacher(teacher)
    x = _inputs(6)
    a, b, lam = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([1, 2, 3, 0, 2, 3]), 0.7
    q = lam * F.one_hot(a, K).float() + (1 - lam) * F.one_hot(b, K).float()
    samples = [DataSample().set_gt_label(int(c)).set_gt_score(row) for c, row in zip(a, q)]
    loss = model(x, samples, mode='loss')['loss']
    with torch.no_grad():
        z = model(x, mode='tensor')
    torch.testing.assert_close(loss.detach(), _hand_ldl_loss(z, teacher, x, q, teacher_weight), rtol=1e-5, atol=1e-6)
    if teacher_weight < 1:  # the soft label is used, not the hard one
        hard = _hand_ldl_loss(z, teacher, x, F.one_hot(a, K).float(), teacher_weight)
        assert not torch.allclose(loss.detach(), hard, atol=1e-4)


def test_ldl_teacher_weight_ramps_up_with_the_message_hub_iteration(fresh_hub):
    model = _ldl(0.5, warmup_iters=10)
    teacher = _teacher()
    model.set_teacher(teacher)
    x, labels = _inputs(6), torch.arange(6) % K
    fresh_hub.update_info('iter', 4)
    loss = model(x, _samples(labels), mode='loss')['loss']
    with torch.no_grad():
        z = model(x, mode='tensor')
    torch.testing.assert_close(loss.detach(), _hand_ldl_loss(z, teacher, x, F.one_hot(labels, K).float(), 0.2),
                               rtol=1e-5, atol=1e-6)


def test_ldl_loss_without_a_teacher_names_the_hooks():
    model = _ldl()
    assert model.teacher is None
    x, labels = _inputs(4), torch.arange(4) % K
    with pytest.raises(RuntimeError, match=r"has no teacher.*EMATeacherHook.*CheckpointTeacherHook"):
        model(x, _samples(labels), mode='loss')
    # testing needs no teacher
    with torch.no_grad():
        assert model.eval()(x, mode='tensor').shape == (4, K)
        assert len(model(x, [DataSample() for _ in range(4)], mode='predict')) == 4


def test_ldl_needs_an_ldl_loss():
    with pytest.raises(ValueError, match=r"LDLImageClassifier: the head LinearClsHead has no LDLLoss.*"
                                         r"loss=dict\(type='LDLLoss'"):
        _build('LDLImageClassifier')
    with pytest.raises(ValueError, match='no LDLLoss'):
        _build('LDLImageClassifier', head=_head(loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1)))


def test_the_teacher_is_outside_the_module_tree():
    model = _ldl()
    keys, n_params = set(model.state_dict()), len(list(model.parameters()))
    teacher = _teacher()
    model.set_teacher(teacher)
    assert model.teacher is teacher
    assert set(model.state_dict()) == keys
    assert set(model.state_dict()) == set(_build(head=_head()).state_dict())  # the plain classifier's keys
    assert len(list(model.parameters())) == n_params
    own = {id(p) for p in model.parameters()}
    assert not any(id(p) in own for p in teacher.parameters())
    assert all(m is not teacher for m in model.modules())
    assert 'teacher' not in dict(model.named_children())
    model.set_teacher(None)
    assert model.teacher is None


def test_ldl_is_temperature_scaled():
    model = _build('LDLImageClassifier', head=_head(loss=dict(type='LDLLoss')), temperature=2.0).eval()
    assert isinstance(model, TemperatureScaledImageClassifier) and isinstance(model, ImageClassifier)
    assert isinstance(model, LDLImageClassifier)
    x = _inputs()
    with torch.no_grad():
        z = model(x, mode='tensor')
    torch.testing.assert_close(_pred_scores(model, x)[0], torch.softmax(z / 2.0, 1))
