# DisMax (Macedo et al. 2022) on the shapes demo: the FCN head's conv_seg becomes a prototype-distance
# layer with DisMax logits -(d + mean d), trained with cross-entropy at entropic scale 10; its own
# score is MMLES. (FPR mosaics are image-level: the classification front end.)
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./ce_shapes_demo.py']
model = dict(decode_head=dict(
    type='OutputLayerHead', head=dict(type='FCNHead'),
    output_layer=dict(type='DisMaxLayer'),
    loss_decode=dict(_delete_=True, type='DisMaxLoss', entropic_scale=10.0)))
