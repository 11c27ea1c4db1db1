# CIFAR-10, ResNet-18 (CIFAR stem), the papers' schedule (IsoMax+ / DisMax and LDL: SGD, lr 0.1,
# momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, lr x0.1 at 100 and 150), for GPU users
# with the data on disk (mmpretrain's CIFAR10 reads the python version from data/cifar10; nothing
# is downloaded: download=False). Test: the 10,000 test images and, as the OOD set, CIFAR-100's
# test images (data/cifar100), told apart by set_name.
#   uqseg train configs/cls/ce_resnet18_cifar10.py   (8 GPUs: tools/dist_train.sh ... 8)
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['mmpretrain::resnet/resnet18_8xb16_cifar10.py']

num_classes = 10
meta_keys = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction',
             'set_name')
test_pipeline = [dict(type='PackInputs', meta_keys=meta_keys)]
ood_pipeline = [dict(type='AddSetName', set_name='cifar100'), dict(type='PackInputs', meta_keys=meta_keys)]

# the data preprocessor inside the model (mmengine uses the top-level one only when the model has none,
# and the methods' configs add batch augments to it)
model = dict(data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes,
                                    mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255], to_rgb=False),
             head=dict(num_classes=num_classes))
train_dataloader = dict(dataset=dict(download=False))
val_dataloader = dict(dataset=dict(download=False, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=128,
    dataset=dict(_delete_=True, type='ConcatDataset', ignore_keys=['classes'], datasets=[
        dict(type='CIFAR10', data_root='data/cifar10', split='test', download=False, pipeline=test_pipeline),
        dict(type='CIFAR100', data_root='data/cifar100', split='test', download=False, pipeline=ood_pipeline)]))
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='SelectivePredictionMetric', confidences=('max-prob', ))]
test_evaluator = [dict(type='SelectivePredictionMetric', confidences=('max-prob', 'entropy', 'margin'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('cifar100', ))]
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[100, 150], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2))
custom_hooks = [dict(type='CheckFiniteLossHook')]
