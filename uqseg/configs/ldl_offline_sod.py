# Offline label distribution learning on ASLP's SOD reference set-up (bce_sod.py: UPerNet /
# ResNet-50, 384x384, 30 DUTS-TR epochs): the teacher is a trained bce_sod.py model (its
# checkpoint, frozen), run on the same CutMix-ed batch; target 0.5 label + 0.5 sigmoid(teacher).
#   uqseg train configs/bce_sod.py
#   uqseg train configs/ldl_offline_sod.py --cfg-options custom_hooks.0.checkpoint=<its best .pth>
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./bce_sod.py']
model = dict(
    type='LDLEncoderDecoder',
    data_preprocessor=dict(type='BatchAugmentSegDataPreProcessor',
                           batch_augments=[dict(type='SegCutMix', alpha=1.0, prob=0.5)]),
    decode_head=dict(loss_decode=dict(_delete_=True, type='LDLLoss', teacher_weight=0.5)))
custom_hooks = [dict(type='CheckpointTeacherHook', checkpoint='work_dirs/bce_sod/best.pth'),
                dict(type='ResumeRandomStateHook')]
