# bce_sod.py on the embedded demo data with a CPU-sized model and schedule (make demo).
#   uqseg make-demo-data && uqseg train configs/bce_sod_demo.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = [
    './_base_/models/r18_half_binary.py',
    './_base_/datasets/sod_demo.py',
    './_base_/schedules/sod_adam_30ep.py',
    'mmseg::_base_/default_runtime.py',
]
# 300 training images / batch 8 = 37.5 iterations an epoch: 1,200 iterations are 32 epochs, long
# enough for the baseline to become overconfident on the test sets, as real SOD models do in 30
# epochs (after 600 iterations it was on some seeds and not on others; README "Demo results").
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(max_iters=1200, val_interval=300)
default_hooks = dict(
    logger=dict(interval=30),
    checkpoint=dict(interval=300, max_keep_ckpts=1, save_last=True))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
