# A CPU-sized version of upernet_r50_binary.py for the demo and the tests: ResNetV1c-18 with half
# of the channels (32-64-128-256), no pretrained weights, plain BN, a slim UPerNet head.
# Why half and not a quarter of the width: at a quarter width (16-32-64-128) the from-scratch model
# cannot fit the demo data and ends *under*confident (OE ~0 on the test sets), the regime where a
# method that lowers confidence, as ASLP, can only raise ECE. At half width the baseline is
# overconfident on the (shifted) demo test sets, as real SOD models are on theirs.
_base_ = ['./upernet_r50_binary.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    pretrained=None,
    backbone=dict(depth=18, stem_channels=32, base_channels=32, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=64, pool_scales=(1, 2, 4), norm_cfg=norm_cfg))
