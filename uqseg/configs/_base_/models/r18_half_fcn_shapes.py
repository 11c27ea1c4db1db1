# FCN on a ResNetV1c-18 at half width (32-64-128-256), dilated to output stride 8 (as mmseg's
# fcn_r50-d8), no pretrained weights, plain BN: a CPU-sized multi-class model for the 64x64 shapes
# demo (4 classes). The method configs replace decode_head by OutputLayerHead(head=<this FCNHead>).
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(64, 64)),
    pretrained=None,
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=32, base_channels=32, num_stages=4, out_indices=(0, 1, 2, 3),
                  dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm_cfg, norm_eval=False, style='pytorch',
                  contract_dilation=True),
    decode_head=dict(type='FCNHead', in_channels=256, in_index=3, channels=64, num_convs=2, concat_input=True,
                     dropout_ratio=0.1, num_classes=4, out_channels=4, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                                      avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
