# Online label distribution learning (Hong et al., 2023) on mmseg's DeepLabV3+ / ResNet-50
# Cityscapes set-up (4 GPUs x 2 images, 512x1024 crops, 80k iterations; data/cityscapes as mmseg
# lays it out): the decode head trains on 0.5 one-hot + 0.5 softmax(EMA teacher) per pixel, the
# teacher (mmengine's ExponentialMovingAverage, decay 0.999) run on the same CutMix-ed batch, its
# share ramped up over the first 4,000 iterations. The auxiliary FCN head keeps cross-entropy.
#   bash tools/dist_train.sh configs/ldl_online_deeplabv3plus_r50_cityscapes.py 4
# Temperature scaling afterwards needs a held-out split (this set-up validates on Cityscapes val,
# its test split): see docs/temperature_scaling.md.
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py']
model = dict(
    type='LDLEncoderDecoder',
    data_preprocessor=dict(type='BatchAugmentSegDataPreProcessor',
                           batch_augments=[dict(type='SegCutMix', alpha=1.0, prob=0.5)]),
    decode_head=dict(loss_decode=dict(_delete_=True, type='LDLLoss', teacher_weight=0.5, warmup_iters=4000)))
custom_hooks = [dict(type='EMATeacherHook', momentum=0.001), dict(type='ResumeRandomStateHook')]
test_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='PixelCalibrationMetric', n_bins=15, nll_brier=True),
    dict(type='PixelUncertaintyMetric', score='max-prob', prefix='maxprob'),
]
