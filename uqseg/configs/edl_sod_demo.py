# EDL on the SOD demo (binary, so a two-class softmax head: num_classes=2, out_channels=2; the SOD
# metrics read its foreground probability p_1): bce_sod_demo.py's UPerHead with an EDL layer (ReLU
# evidence) and the EDL loss, its KL annealed over 375 iterations (10 epochs of the 300 images).
#   uqseg demo --seeds 0 --work-dir work_dirs/heads_sod --configs configs/bce_sod_demo.py \
#       configs/edl_sod_demo.py configs/tedl_sod_demo.py configs/dismax_sod_demo.py configs/isomax_sod_demo.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./bce_sod_demo.py']
model = dict(decode_head=dict(
    type='OutputLayerHead', head=dict(type='UPerHead'), num_classes=2, out_channels=2,
    output_layer=dict(type='EDLLayer', evidence='relu'),
    loss_decode=dict(_delete_=True, type='EDLLoss', data_term='mse', kl_anneal_iters=375)))
