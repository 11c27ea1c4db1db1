# A CPU-sized version of upernet_r50_binary.py for the demo and the tests: ResNetV1c-18 with a
# quarter of the channels (16-32-64-128), no pretrained weights, plain BN, a slim UPerNet head.
_base_ = ['./upernet_r50_binary.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    pretrained=None,
    backbone=dict(depth=18, stem_channels=16, base_channels=16, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=32, pool_scales=(1, 2, 4), norm_cfg=norm_cfg))
