"""Every classification config in configs/cls/ parses, builds its model with mmpretrain's MODELS (the
CIFAR ones too: building needs no data), takes a batch through its data preprocessor and model
(train and test), and builds its evaluators (mmpretrain's METRICS) and hooks; each method config has
the pieces of its method (model class, head, output layer, loss, batch augments, hooks), keeps the
dataset's preprocessor (num_classes, mean, std) when it adds batch augments, names OOD sets its test
data produces, and schedules consistent with its comments."""
import glob
import inspect
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import HOOKS
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import DATASETS, METRICS, MODELS
from mmpretrain.structures import DataSample

from tests.helpers.cfg import REPO
from uqseg.cls.metrics import SelectivePredictionMetric
from uqseg.cls.models.classifiers import LDLImageClassifier, MCDropoutImageClassifier
from uqseg.cls.models.fpr_mosaic import FPRMosaic
from uqseg.cls.models.heads import OutputLayerClsHead
from uqseg.cls.models.losses import DisMaxLoss, EDLLoss, LDLLoss
from uqseg.core.output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer
from uqseg.engine.hooks import CheckFiniteLossHook, CheckpointTeacherHook, EMATeacherHook, TEDLHook

pytestmark = pytest.mark.usefixtures('one_thread')

# an ensemble config is no trainable method: its members are (tests/cls/members/ build and test it)
CONFIGS = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', 'cls', '*.py'))
                 if not osp.basename(p).startswith('ensemble_'))
NAMES = [osp.splitext(osp.basename(p))[0] for p in CONFIGS]

#: the data set of a config (its name's suffix), its classes, input and normalisation (the usual
#: per-channel statistics of the training images, 0..255 scale), and its cross-entropy config
DATA = {
    'fmnist_demo': dict(classes=10, shape=(1, 28, 28), mean=[72.94], std=[90.02], ce='ce_fmnist_demo'),
    'resnet18_cifar10': dict(classes=10, shape=(3, 32, 32), mean=[125.307, 122.961, 113.8575],
                             std=[51.5865, 50.847, 51.255], ce='ce_resnet18_cifar10'),
    'resnet34_cifar100': dict(classes=100, shape=(3, 32, 32), mean=[129.304, 124.070, 112.434],
                              std=[68.170, 65.392, 70.418], ce='ce_resnet34_cifar100'),
}
#: per method (the name's prefix): model class, head class, output layer, loss class name, batch
#: augments, method hooks
METHODS = {
    'ce': (ImageClassifier, 'LinearClsHead', None, 'CrossEntropyLoss', None, set()),
    'ls': (ImageClassifier, 'LinearClsHead', None, 'LabelSmoothLoss', None, set()),
    'ce_mixup': (ImageClassifier, 'LinearClsHead', None, 'CrossEntropyLoss', 'mixup', set()),
    'edl': (ImageClassifier, 'OutputLayerClsHead', EDLLayer, 'EDLLoss', None, set()),
    'tedl': (ImageClassifier, 'OutputLayerClsHead', EDLLayer, 'EDLLoss', None, {TEDLHook}),
    'dismax': (ImageClassifier, 'OutputLayerClsHead', DisMaxLayer, 'DisMaxLoss', 'mosaic', set()),
    'isomax': (ImageClassifier, 'OutputLayerClsHead', IsoMaxPlusLayer, 'DisMaxLoss', None, set()),
    'kd': (LDLImageClassifier, 'LinearClsHead', None, 'LDLLoss', None, {CheckpointTeacherHook}),
    'ldl_offline': (LDLImageClassifier, 'LinearClsHead', None, 'LDLLoss', 'mixup', {CheckpointTeacherHook}),
    'ldl_online': (LDLImageClassifier, 'LinearClsHead', None, 'LDLLoss', 'mixup', {EMATeacherHook}),
    'mc_dropout': (MCDropoutImageClassifier, 'OutputLayerClsHead', None, 'CrossEntropyLoss', None, set()),
}
UQSEG_LOSSES = {'EDLLoss': EDLLoss, 'DisMaxLoss': DisMaxLoss, 'LDLLoss': LDLLoss}


def _split(name):
    for data in DATA:
        if name.endswith('_' + data):
            return name[:-len(data) - 1], data
    raise AssertionError(f'{name}: no known data set suffix {sorted(DATA)}')


_cache = {}


def _cfg(name) -> Config:
    if name not in _cache:
        _cache[name] = Config.fromfile(osp.join(REPO, 'configs', 'cls', name + '.py'))
    return _cache[name]


def _model(name, init=True):
    torch.manual_seed(0)
    model = MODELS.build(_cfg(name).model)
    if init:
        model.init_weights()
    return model


_models = {}


def _built(name):
    """The config's model, built once for the tests that only read it (weights not initialised)."""
    if name not in _models:
        _models[name] = _model(name, init=False)
    return _models[name]


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def test_every_config_is_known():
    assert len(CONFIGS) >= 20
    for name in NAMES:
        method, _ = _split(name)
        assert method in METHODS, name


@pytest.mark.parametrize('name', NAMES)
def test_builds_the_model_of_its_method(name):
    method, data = _split(name)
    model_cls, head, layer, loss, augment, _ = METHODS[method]
    model = _built(name)
    assert type(model) is model_cls
    assert type(model.head).__name__ == head and model.head.num_classes == DATA[data]['classes']
    assert type(model.head.loss_module).__name__ == loss
    if loss in UQSEG_LOSSES:  # the mmpretrain registration, not mmseg's
        assert isinstance(model.head.loss_module, UQSEG_LOSSES[loss])
    if layer is None:
        assert isinstance(model.head.fc, torch.nn.Linear)
    else:
        assert isinstance(model.head, OutputLayerClsHead) and type(model.head.fc) is layer
    if method in ('edl', 'tedl'):
        assert model.head.fc.evidence == ('relu' if method == 'edl' else 'elu')
        assert model.head.output_kind == 'log_alpha'
    if method == 'ce_mixup':
        assert model.head.loss_module.use_soft
    if method in ('kd', 'ldl_offline'):
        assert model.head.loss_module.teacher_weight == 1.0
    if method == 'ldl_online':
        assert model.head.loss_module.teacher_weight == 0.5


@pytest.mark.parametrize('name', NAMES)
def test_data_preprocessor_keeps_the_datasets_normalisation(name):
    method, data = _split(name)
    augment = METHODS[method][4]
    cfg = _cfg(name)
    assert cfg.model.data_preprocessor.type == 'ClsDataPreprocessor'
    pre = _built(name).data_preprocessor
    assert isinstance(pre, ClsDataPreprocessor)
    want = DATA[data]
    assert pre.num_classes == want['classes']
    torch.testing.assert_close(pre.mean.flatten(), torch.tensor(want['mean']))
    torch.testing.assert_close(pre.std.flatten(), torch.tensor(want['std']))
    # the same as the dataset's cross-entropy config, whatever the method config added
    ce = _built(want['ce']).data_preprocessor
    assert torch.equal(pre.mean, ce.mean) and torch.equal(pre.std, ce.std) and pre.num_classes == ce.num_classes
    assert pre.to_rgb == ce.to_rgb is False and pre._enable_normalize
    if augment is None:
        assert pre.batch_augments is None
    else:
        augments = pre.batch_augments.augments
        assert pre.to_onehot
        if augment == 'mosaic':
            assert [type(a) for a in augments] == [FPRMosaic]
        else:
            assert [type(a).__name__ for a in augments] == ['Mixup', 'CutMix']


def _batch(data, n=4):
    c, h, w = DATA[data]['shape']
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (c, h, w), generator=g, dtype=torch.uint8) for _ in range(n)]
    samples = [DataSample().set_gt_label(i % DATA[data]['classes']) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', NAMES)
def test_a_batch_goes_through_training_and_testing(name):
    method, data = _split(name)
    model = _model(name)
    k = DATA[data]['classes']
    if isinstance(model, LDLImageClassifier):
        model.set_teacher(_model(name, init=False))
    model.train()
    batch = model.data_preprocessor(_batch(data), True)
    assert batch['inputs'].shape == (4, *DATA[data]['shape']) and batch['inputs'].dtype == torch.float32
    if METHODS[method][4] is not None:
        scores = torch.stack([s.gt_score for s in batch['data_samples']])
        assert scores.shape == (4, k)
        torch.testing.assert_close(scores.sum(1), torch.ones(4))
    losses = model(**batch, mode='loss')
    assert torch.isfinite(losses['loss'])
    model.eval()
    with torch.no_grad():
        batch = model.data_preprocessor(_batch(data), False)
        preds = model(**batch, mode='predict')
    assert len(preds) == 4 and all(p.pred_score.shape == (k, ) for p in preds)
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]).sum(1), torch.ones(4))


@pytest.mark.parametrize('name', NAMES)
def test_evaluators_build_with_mmpretrain_metrics(name):
    method, data = _split(name)
    cfg = _cfg(name)
    val = [METRICS.build(m) for m in _as_list(cfg.val_evaluator)]
    test = [METRICS.build(m) for m in _as_list(cfg.test_evaluator)]
    assert any(isinstance(m, SelectivePredictionMetric) for m in val)
    (selective, ) = [m for m in test if isinstance(m, SelectivePredictionMetric)]
    assert selective.ood_sets and selective.prefix == 'selective'
    assert {'max-prob', 'entropy', 'margin'} <= set(selective.confidences)
    # the model's own score exactly where the head has an output layer
    assert ('own' in selective.confidences) == (METHODS[method][1] == 'OutputLayerClsHead')


def _set_names(dataset: ConfigDict):
    """The set names a dataset config gives its samples: AddSetName in its pipeline, else its set_name
    argument (or that argument's default), else none."""
    for t in dataset.get('pipeline', []):
        if t['type'] == 'AddSetName':
            return t['set_name']
    if 'set_name' in dataset:
        return dataset.set_name
    param = inspect.signature(DATASETS.get(dataset.type).__init__).parameters.get('set_name')
    return None if param is None else param.default


def _pack_keys(dataset: ConfigDict):
    (pack, ) = [t for t in dataset.pipeline if t['type'] == 'PackInputs']
    return pack.get('meta_keys', ())


@pytest.mark.parametrize('name', NAMES)
def test_the_test_data_produces_the_ood_sets(name):
    cfg = _cfg(name)
    (selective, ) = [m for m in _as_list(cfg.test_evaluator) if m['type'] == 'SelectivePredictionMetric']
    test = cfg.test_dataloader.dataset
    assert test.type == 'ConcatDataset' and 'classes' in test.ignore_keys
    names = [_set_names(d) for d in test.datasets]
    assert names[1:] == list(selective.ood_sets)  # the in-distribution set first, then the OOD sets
    assert names[0] not in selective.ood_sets  # the in-distribution set: any name (or none) but an OOD one
    for d in test.datasets:
        assert 'set_name' in _pack_keys(d), d.type
        assert not d.get('download', False)
    for loader in ('train_dataloader', 'val_dataloader'):
        assert not cfg[loader].dataset.get('download', False)
    for d in [cfg.train_dataloader.dataset, cfg.val_dataloader.dataset, *test.datasets]:
        if d.type in ('CIFAR10', 'CIFAR100'):  # each CIFAR set read from its own folder
            assert d.data_root.rstrip('/') == 'data/' + d.type.lower(), (d.type, d.data_root)
    _, data = _split(name)
    in_dist = {'fmnist_demo': 'FashionMNISTSplit', 'resnet18_cifar10': 'CIFAR10', 'resnet34_cifar100': 'CIFAR100'}
    assert test.datasets[0].type == in_dist[data] == cfg.train_dataloader.dataset.type
    assert cfg.val_dataloader.dataset.type == in_dist[data]


@pytest.mark.parametrize('name', NAMES)
def test_hooks_match_the_method(name):
    method, _ = _split(name)
    cfg = _cfg(name)
    hooks = [HOOKS.build(dict(h)) for h in cfg.custom_hooks]
    method_hooks = {type(h) for h in hooks} - {CheckFiniteLossHook}
    assert method_hooks == METHODS[method][5]
    assert any(isinstance(h, CheckFiniteLossHook) for h in hooks)
    epochs = cfg.train_cfg.max_epochs
    for h in hooks:
        if isinstance(h, TEDLHook):  # the switch inside the run
            assert h.switch_epoch is not None and 0 < h.switch_epoch < epochs
        if isinstance(h, EMATeacherHook):
            assert 0 < h.ema_cfg['momentum'] < 1
        if isinstance(h, CheckpointTeacherHook):
            # the teacher is the last checkpoint of the dataset's cross-entropy config (uqseg train's default work dir)
            ce_name = DATA[_split(name)[1]]['ce']
            ce = _cfg(ce_name)
            ce_epochs = ce.train_cfg.max_epochs
            assert ce_epochs % ce.default_hooks.checkpoint.interval == 0  # the last epoch is saved
            assert h.checkpoint == f'work_dirs/{ce_name}/epoch_{ce_epochs}.pth'
            assert h.config is None  # the student's architecture


def test_fashion_mnist_schedules_match_the_comments():
    """EDL's KL annealed over 2 of 3 epochs, TEDL's over the epoch after its switch, online LDL's
    teacher weight ramped up over the first epoch; an epoch is ceil(num_train / batch_size) iterations."""
    base = _cfg('ce_fmnist_demo')
    epoch = math.ceil(base.train_dataloader.dataset.num_train / base.train_dataloader.batch_size)
    assert epoch == 118 and base.train_cfg.max_epochs == 3
    assert _cfg('edl_fmnist_demo').model.head.loss.kl_anneal_iters == 2 * epoch
    tedl = _cfg('tedl_fmnist_demo')
    (switch, ) = [h.switch_epoch for h in tedl.custom_hooks if h.type == 'TEDLHook']
    assert tedl.model.head.loss.kl_anneal_iters == (tedl.train_cfg.max_epochs - switch) * epoch
    assert _cfg('ldl_online_fmnist_demo').model.head.loss.warmup_iters == epoch
