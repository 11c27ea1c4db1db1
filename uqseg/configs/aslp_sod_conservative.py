# ASLP in conservative mode: the penalty compares the current validation accuracy with the best seen
# so far (R = Acc_val - Acc_ref) instead of bounding the expected target confidence by it, so alphas
# grow only while they do not cost held-out accuracy. Otherwise identical to aslp_sod.py.
#   uqseg train configs/aslp_sod_conservative.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./aslp_sod.py']
custom_hooks = [
    dict(type='CheckFiniteLossHook'),
    dict(type='ResumeRandomStateHook'),
    dict(type='ASLPHook', mode='conservative', eta=2e-3, lam=2000.0, alpha_max=None,
         warmup_iters=5 * 956, val_set='DUTS-TR-val'),
]
