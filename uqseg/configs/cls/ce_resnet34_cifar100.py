# Cross-entropy baseline, CIFAR-100 ResNet-34 (the papers' schedule); OOD set: CIFAR-10's test images.
_base_ = ['./_base_/cifar10_resnet18.py']
model = dict(data_preprocessor=dict(num_classes=100, mean=[129.304, 124.070, 112.434], std=[68.170, 65.392, 70.418]),
             backbone=dict(depth=34), head=dict(num_classes=100))
meta_keys = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction',
             'set_name')
test_pipeline = [dict(type='PackInputs', meta_keys=meta_keys)]
ood_pipeline = [dict(type='AddSetName', set_name='cifar10'), dict(type='PackInputs', meta_keys=meta_keys)]
train_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
val_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
test_dataloader = dict(
    dataset=dict(_delete_=True, type='ConcatDataset', ignore_keys=['classes'], datasets=[
        dict(type='CIFAR100', data_root='data/cifar100', split='test', download=False, pipeline=test_pipeline),
        dict(type='CIFAR10', data_root='data/cifar10', split='test', download=False, pipeline=ood_pipeline)]))
test_evaluator = [dict(type='SelectivePredictionMetric', confidences=('max-prob', 'entropy', 'margin'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('cifar10', ))]
