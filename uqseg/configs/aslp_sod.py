# ASLP: Adaptive Stochastic Label Perturbation with the SC-BCE loss (Liu et al., ICCV 2023), calibration
# mode, on the reference setup of bce_sod.py (UPerNet / ResNet-50, 384x384, Adam 2.5e-5, batch 10,
# 30 DUTS-TR epochs of 956 iterations; validation every epoch on the 1,000 held-out DUTS-TR images;
# tests on DUTS-TE, ECSSD, HKU-IS, DUT-OMRON, PASCAL-S, SOD and the DTD OOD set).
#   uqseg train configs/aslp_sod.py
#   uqseg dump-alphas work_dirs/aslp_sod/iter_28680.pth configs/aslp_sod.py --out alphas/
# Parameters are the public code's, in the paper's beta convention: hard inversion (beta = 2), one
# Bernoulli(alpha_i) draw per image and iteration ('sample' mode), alpha_i = 0 at the start, no
# updates during the first 5 epochs, eta 2e-3, lambda 2000, alpha capped at 1/beta - 0.01 = 0.49.
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./bce_sod.py']
model = dict(
    decode_head=dict(
        type='ASLPHead',  # the UPerHead of the base config (its keys merge in here) plus the alphas
        head=dict(type='UPerHead'),
        init_alpha=0.0,
        loss_decode=dict(_delete_=True, type='SCBCELoss', perturbation='HI', mode='sample', loss_weight=1.0)))
custom_hooks = [
    dict(type='CheckFiniteLossHook'),
    dict(type='ResumeRandomStateHook'),
    dict(type='ASLPHook', mode='calibration', eta=2e-3, lam=2000.0, alpha_max=None,
         warmup_iters=5 * 956, val_set='DUTS-TR-val'),
]
