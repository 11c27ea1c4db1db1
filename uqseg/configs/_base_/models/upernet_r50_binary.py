# UPerNet on an ImageNet-pretrained ResNet-50 (mmseg's), with a binary head: one output channel,
# sigmoid, threshold 0.5 (mmseg's default for out_channels=1 is 0.3).
_base_ = ['mmseg::_base_/models/upernet_r50.py']
model = dict(
    data_preprocessor=dict(size=(384, 384)),
    decode_head=dict(
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    auxiliary_head=None)
