# EDL (Sensoy et al. 2018) on mmseg's DeepLabV3+ / ResNet-50 Cityscapes set-up (4 GPUs x 2 images,
# 512x1024 crops, 80k iterations; the data from your disk as mmseg lays it out, data/cityscapes).
# The DepthwiseSeparableASPPHead's conv_seg becomes an EDL layer (ReLU evidence, output log alpha);
# the EDL loss anneals its KL term over 10 epochs of the 2,975 training images (3,720 iterations at
# batch 8). The auxiliary FCN head stays a plain cross-entropy head (it only trains the backbone).
#   bash tools/dist_train.sh configs/edl_deeplabv3plus_r50_cityscapes.py 4
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py']
model = dict(decode_head=dict(
    type='OutputLayerHead', head=dict(type='DepthwiseSeparableASPPHead'),
    output_layer=dict(type='EDLLayer', evidence='relu'),
    loss_decode=dict(_delete_=True, type='EDLLoss', data_term='mse', kl_anneal_iters=3720)))
test_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='PixelCalibrationMetric', n_bins=15, nll_brier=True),
    dict(type='PixelUncertaintyMetric', score='own', prefix='own'),  # vacuity
    dict(type='PixelUncertaintyMetric', score='max-prob', prefix='maxprob'),
]
# the decode head's dropout draws from torch's generator: exact --resume needs the RNG states
custom_hooks = [dict(type='ResumeRandomStateHook')]
