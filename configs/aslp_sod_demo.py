# aslp_sod.py on the demo data with the CPU-sized model and schedule of bce_sod_demo.py (make demo).
#   python tools/make_demo_data.py && python tools/train.py configs/aslp_sod_demo.py
_base_ = ['./bce_sod_demo.py']
model = dict(
    decode_head=dict(
        type='ASLPHead',
        head_type='UPerHead',
        init_alpha=0.0,
        loss_decode=dict(_delete_=True, type='SCBCELoss', perturbation='HI', mode='sample', loss_weight=1.0)))
iters_per_epoch = 30
# validation every epoch, as the reference schedule: Acc_val is refreshed before each epoch's updates
train_cfg = dict(val_interval=iters_per_epoch)
custom_hooks = [
    dict(type='CheckFiniteLossHook'),
    dict(type='ResumeRandomStateHook'),
    dict(type='ASLPHook', mode='calibration', eta=2e-3, lam=2000.0, alpha_max=None,
         warmup_iters=3 * iters_per_epoch, val_set='DUTS-TR-val'),
]
