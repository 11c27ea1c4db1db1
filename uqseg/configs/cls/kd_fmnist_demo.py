# Knowledge distillation: the student learns the plain cross-entropy model's softmax (teacher
# weight 1, temperature 1) on un-augmented batches (no Mixup / CutMix). Hong et al. (2023) find
# this does not improve calibration; LDL adds the augmentation (ldl_offline_fmnist_demo.py).
# The teacher: a checkpoint of ce_fmnist_demo.py (tools/compare_classifiers.py passes its own).
_base_ = ['./_base_/fashion_mnist_demo.py']
model = dict(type='LDLImageClassifier',
             head=dict(loss=dict(_delete_=True, type='LDLLoss', teacher_weight=1.0, teacher_temperature=1.0)))
custom_hooks = [dict(type='CheckpointTeacherHook', checkpoint='work_dirs/ce_fmnist_demo/epoch_3.pth'),
                dict(type='CheckFiniteLossHook')]
