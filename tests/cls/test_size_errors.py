"""Issue 19: size mismatches of a classifier are errors naming the key and both sizes, not a failure deep
inside torch or mmpretrain:

* an output layer's ``in_channels`` that is not the features' width (before: an ``einsum`` / ``linear``
  shape error);
* a ``num_classes`` smaller than the training data's classes (before, with batch augments:
  ``ClsDataPreprocessor``'s ``F.one_hot`` "Class values must be smaller than num_classes"; without:
  the loss's label range error, naming no key), checked when the runner's training loop starts, before
  the first batch; a label at or above the scores' width in a uqseg loss; soft targets of another width
  than the scores (``data_preprocessor`` and head ``num_classes`` differ).
"""
import re

import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from PIL import Image

import uqseg.cls  # noqa: F401  (registers the head, losses and FPRMosaic)
from uqseg.core.checks import LabelRangeError
from uqseg.engine.runtime_info import training_classes

pytestmark = pytest.mark.usefixtures('one_thread')
N_DATA_CLASSES, SIDE = 4, 32


def _classifier(layer='DisMaxLayer', in_channels=120, num_classes=3, pre_classes=None, batch_augments=True):
    loss = dict(type='EDLLoss') if layer == 'EDLLayer' else dict(type='DisMaxLoss')
    pre = dict(type='ClsDataPreprocessor', num_classes=pre_classes or num_classes, mean=[60.0], std=[60.0],
               to_rgb=False)
    if batch_augments:
        pre['batch_augments'] = dict(augments=dict(type='FPRMosaic'))
    return dict(type='ImageClassifier', data_preprocessor=pre, backbone=dict(type='LeNet5'),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='OutputLayerClsHead', num_classes=num_classes, in_channels=in_channels,
                          output_layer=dict(type=layer), loss=loss))


@pytest.mark.parametrize('layer', ['EDLLayer', 'DisMaxLayer', 'IsoMaxPlusLayer'])
def test_in_channels_not_matching_the_features_names_the_key_and_both_sizes(layer):
    model = MODELS.build(_classifier(layer, in_channels=64))
    want = f'{layer}: in_channels=64 but the features have 120 channels (dim 1 of (2, 120)); set in_channels=120'
    with pytest.raises(ValueError, match=re.escape(want)):
        model(torch.rand(2, 1, SIDE, SIDE), mode='tensor')
    assert MODELS.build(_classifier(layer))(torch.rand(2, 1, SIDE, SIDE), mode='tensor').shape == (2, 3)


@pytest.fixture(scope='module')
def class_folders(tmp_path_factory):
    """``c0`` .. ``c3``: four classes of 4 grey images each (mmpretrain's CustomDataset reads the folders)."""
    root = tmp_path_factory.mktemp('four_classes')
    rng = np.random.default_rng(1)
    for k in range(N_DATA_CLASSES):
        (root / f'c{k}').mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)).save(root / f'c{k}' / f'{i}.png')
    return str(root)


def _train(root, tmp_path, name, **model_kw):
    pipeline = [dict(type='LoadImageFromFile', color_type='grayscale'), dict(type='PackInputs')]
    runner = Runner(
        model=_classifier(**model_kw), work_dir=str(tmp_path), experiment_name=f'size_errors_{name}',
        train_dataloader=dict(batch_size=16, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                              dataset=dict(type='CustomDataset', data_root=root, pipeline=pipeline)),
        train_cfg=dict(by_epoch=False, max_iters=1), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10 ** 6, by_epoch=False, save_last=False)),
        default_scope='mmpretrain', randomness=dict(seed=0), log_level='WARNING')
    try:
        runner.train()
    finally:
        # a training loop stopped by an error leaves mmengine's loop_stage at 'train'; later tests build no runner
        runner.message_hub.pop_info('loop_stage', None)
    return runner


@pytest.mark.parametrize('batch_augments', [True, False], ids=['fpr_mosaic', 'labels'])
def test_num_classes_smaller_than_the_training_data_names_the_key_and_the_classes(class_folders, tmp_path,
                                                                                  batch_augments):
    want = ("OutputLayerClsHead: num_classes=3 is too small: the training dataset has 4 classes ('c0', 'c1', 'c2', "
            "'c3'); set num_classes=4 in the head (model.head.num_classes) and in model.data_preprocessor")
    with pytest.raises(ValueError, match=re.escape(want)):
        _train(class_folders, tmp_path, f'small_{batch_augments}', batch_augments=batch_augments)
    assert training_classes() is None  # nothing left behind
    runner = _train(class_folders, tmp_path, f'right_{batch_augments}', num_classes=N_DATA_CLASSES,
                    batch_augments=batch_augments)
    assert runner.iter == 1


def test_data_preprocessor_num_classes_other_than_the_heads_names_both(class_folders, tmp_path):
    want = ("DisMaxLoss: the soft targets (gt_score: the one-hot targets of batch augments) have 5 classes, the "
            "scores 4: model.data_preprocessor num_classes=5 must equal the head's num_classes=4")
    with pytest.raises(ValueError, match=re.escape(want)):
        _train(class_folders, tmp_path, 'pre_5', num_classes=N_DATA_CLASSES, pre_classes=5)


@pytest.mark.parametrize('loss', ['EDLLoss', 'DisMaxLoss', 'LDLLoss'])
def test_a_label_beyond_the_scores_in_a_loss_says_which_num_classes_to_set(loss):
    fn = MODELS.build(dict(type=loss))
    kw = dict(teacher_logits=torch.zeros(4, 3)) if loss == 'LDLLoss' else {}
    with pytest.raises(LabelRangeError, match=re.escape(
            f'{loss}: labels must be class indices 0..2 (classification has no ignore_index: every index is a class); '
            'got [3] (sample 3 of the batch): num_classes=3 is too small: the data has more classes; set '
            'num_classes=the number of classes in the head (model.head.num_classes)')):
        fn(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), **kw)
    # a negative label is a bad label, not too few classes: no num_classes advice
    with pytest.raises(LabelRangeError) as info:
        fn(torch.randn(4, 3), torch.tensor([0, -1, 2, 1]), **kw)
    assert 'num_classes' not in str(info.value)
