# Online label distribution learning (Hong et al., 2023) on the shapes demo: the CE baseline
# (ce_shapes_demo.py) trained on the pixel soft labels of its own moving average (EMATeacherHook:
# mmengine's ExponentialMovingAverage, momentum 0.01 = decay 0.99, a horizon of ~100 of the 800
# iterations) on the same CutMix-ed batch (SegCutMix, half of the batches). The target is
# 0.5 one-hot + 0.5 softmax(teacher), the teacher's share ramped up from 0 over the first 200
# iterations while the average is still untrained (docs/ldl.md).
#   uqseg train configs/ldl_online_shapes_demo.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./ce_shapes_demo.py']
model = dict(
    type='LDLEncoderDecoder',
    data_preprocessor=dict(type='BatchAugmentSegDataPreProcessor',
                           batch_augments=[dict(type='SegCutMix', alpha=1.0, prob=0.5)]),
    decode_head=dict(loss_decode=dict(_delete_=True, type='LDLLoss', teacher_weight=0.5, teacher_temperature=1.0,
                                      warmup_iters=200)))
custom_hooks = [dict(type='EMATeacherHook', momentum=0.01), dict(type='CheckFiniteLossHook'), dict(type='ResumeRandomStateHook')]
