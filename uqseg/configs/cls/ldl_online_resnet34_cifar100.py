# Online LDL, CIFAR-100 ResNet-34 (EMA teacher, Mixup / CutMix).
_base_ = ['./ce_resnet34_cifar100.py']
model = dict(type='LDLImageClassifier',
             data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.0),
                                                                  dict(type='CutMix', alpha=1.0)])),
             head=dict(loss=dict(_delete_=True, type='LDLLoss', teacher_weight=0.5, warmup_iters=1955)))
custom_hooks = [dict(type='EMATeacherHook', momentum=0.001), dict(type='CheckFiniteLossHook')]
