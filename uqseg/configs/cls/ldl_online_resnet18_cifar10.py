# Online LDL on CIFAR-10 ResNet-18: EMA teacher (momentum 0.001), Mixup / CutMix, target 0.5 mixed
# label + 0.5 softmax(teacher), the teacher's share ramped up over 5 epochs.
_base_ = ['./_base_/cifar10_resnet18.py']
model = dict(type='LDLImageClassifier',
             data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.0),
                                                                  dict(type='CutMix', alpha=1.0)])),
             head=dict(loss=dict(_delete_=True, type='LDLLoss', teacher_weight=0.5, warmup_iters=1955)))
custom_hooks = [dict(type='EMATeacherHook', momentum=0.001), dict(type='CheckFiniteLossHook')]
