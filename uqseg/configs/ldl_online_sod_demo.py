# Online label distribution learning (Hong et al., 2023) on the SOD demo: bce_sod_demo.py's
# one-channel sigmoid model trained on the soft labels of its own moving average (EMATeacherHook,
# momentum 0.01 = decay 0.99 over the 1,200 iterations) on the same CutMix-ed batch (SegCutMix,
# half of the batches); target 0.5 label + 0.5 sigmoid(teacher), the teacher's share ramped up
# from 0 over the first 300 iterations (docs/ldl.md).
#   uqseg train configs/ldl_online_sod_demo.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./bce_sod_demo.py']
model = dict(
    type='LDLEncoderDecoder',
    data_preprocessor=dict(type='BatchAugmentSegDataPreProcessor',
                           batch_augments=[dict(type='SegCutMix', alpha=1.0, prob=0.5)]),
    decode_head=dict(loss_decode=dict(_delete_=True, type='LDLLoss', teacher_weight=0.5, teacher_temperature=1.0,
                                      warmup_iters=300)))
custom_hooks = [dict(type='EMATeacherHook', momentum=0.01), dict(type='CheckFiniteLossHook'),
                dict(type='ResumeRandomStateHook')]
