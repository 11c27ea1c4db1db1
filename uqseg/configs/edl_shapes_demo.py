# EDL (Sensoy et al. 2018) on the shapes demo: the FCN head's conv_seg becomes an EDL layer (ReLU
# evidence, output log alpha), trained with the EDL loss (MSE data term, KL to Dir(1) annealed over
# 200 iterations = 4 epochs of the 400 images; the paper anneals over 10 of its epochs).
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./ce_shapes_demo.py']
model = dict(decode_head=dict(
    type='OutputLayerHead', head=dict(type='FCNHead'),
    output_layer=dict(type='EDLLayer', evidence='relu'),
    loss_decode=dict(_delete_=True, type='EDLLoss', data_term='mse', kl_anneal_iters=200)))
