# Online label distribution learning: the teacher is the student's own moving average
# (EMATeacherHook, momentum 0.01), on the same Mixup / CutMix batch; target 0.5 mixed label +
# 0.5 softmax(teacher), the teacher's share ramped up over the first epoch (118 iterations).
_base_ = ['./_base_/fashion_mnist_demo.py']
model = dict(type='LDLImageClassifier',
             data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.0),
                                                                  dict(type='CutMix', alpha=1.0)])),
             head=dict(loss=dict(_delete_=True, type='LDLLoss', teacher_weight=0.5, warmup_iters=118)))
custom_hooks = [dict(type='EMATeacherHook', momentum=0.01), dict(type='CheckFiniteLossHook')]
