# DisMax on the SOD demo: bce_sod_demo.py's UPerHead as a two-class softmax head whose conv_seg is
# the DisMax prototype-distance layer, trained at entropic scale 10.
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./bce_sod_demo.py']
model = dict(decode_head=dict(
    type='OutputLayerHead', head=dict(type='UPerHead'), num_classes=2, out_channels=2,
    output_layer=dict(type='DisMaxLayer'),
    loss_decode=dict(_delete_=True, type='DisMaxLoss', entropic_scale=10.0)))
