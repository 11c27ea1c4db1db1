# DisMax (Macedo et al. 2022) on mmseg's SegFormer MiT-B0 ADE20K set-up (8 GPUs x 2 images,
# 512x512, 160k iterations; ImageNet-pretrained MiT-B0 and the data from your disk as mmseg's config
# expects them). SegFormer's MLP head classifies through conv_seg, which becomes the DisMax
# prototype-distance layer, trained with cross-entropy at entropic scale 10; its own score is MMLES.
#   bash tools/dist_train.sh configs/dismax_segformer_mit-b0_ade20k.py 8
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
model = dict(decode_head=dict(
    type='OutputLayerHead', head=dict(type='SegformerHead'),
    output_layer=dict(type='DisMaxLayer'),
    loss_decode=dict(_delete_=True, type='DisMaxLoss', entropic_scale=10.0)))
test_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='PixelCalibrationMetric', n_bins=15, nll_brier=True),
    dict(type='PixelUncertaintyMetric', score='own', prefix='own'),  # MMLES
    dict(type='PixelUncertaintyMetric', score='max-prob', prefix='maxprob'),
]
# the decode head's dropout draws from torch's generator: exact --resume needs the RNG states
custom_hooks = [dict(type='ResumeRandomStateHook')]
