# aslp_sod_demo.py in conservative mode (R = Acc_val - Acc_ref): alphas grow only while the held-out
# accuracy stays at its best, the paper's answer to a loss of accuracy. For the seed study:
#   uqseg demo --seeds 0 1 2 3 4 --configs configs/bce_sod_demo.py configs/aslp_sod_demo.py \
#       configs/aslp_sod_conservative_demo.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./aslp_sod_demo.py']
custom_hooks = [
    dict(type='CheckFiniteLossHook'),
    dict(type='ResumeRandomStateHook'),
    dict(type='ASLPHook', mode='conservative', eta=2e-3, lam=2000.0, alpha_max=None, warmup_iters=None,
         val_set='DUTS-TR-val'),
]
