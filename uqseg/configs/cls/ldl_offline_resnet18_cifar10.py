# Offline LDL ("Aug-SL", Hong et al., 2023) on CIFAR-10 ResNet-18: a trained cross-entropy model's
# softmax on the same Mixup / CutMix batch is the target. Give the teacher's checkpoint:
#   uqseg train configs/cls/ldl_offline_resnet18_cifar10.py \
#       --cfg-options custom_hooks.0.checkpoint=work_dirs/ce_resnet18_cifar10/epoch_200.pth
_base_ = ['./_base_/cifar10_resnet18.py']
model = dict(type='LDLImageClassifier',
             data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.0),
                                                                  dict(type='CutMix', alpha=1.0)])),
             head=dict(loss=dict(_delete_=True, type='LDLLoss', teacher_weight=1.0)))
custom_hooks = [dict(type='CheckpointTeacherHook', checkpoint='work_dirs/ce_resnet18_cifar10/epoch_200.pth'),
                dict(type='CheckFiniteLossHook')]
