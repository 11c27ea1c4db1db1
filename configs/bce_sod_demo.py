# bce_sod.py on the embedded demo data with a CPU-sized model and schedule (make demo).
#   python tools/make_demo_data.py && python tools/train.py configs/bce_sod_demo.py
_base_ = [
    './_base_/models/tiny_r18_binary.py',
    './_base_/datasets/sod_demo.py',
    './_base_/schedules/sod_adam_30ep.py',
    'mmseg::_base_/default_runtime.py',
]
# 240 training images / batch 8 = 30 iterations an epoch; 20 epochs.
iters_per_epoch = 30
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(max_iters=20 * iters_per_epoch, val_interval=5 * iters_per_epoch)
default_hooks = dict(
    logger=dict(interval=30),
    checkpoint=dict(interval=5 * iters_per_epoch, max_keep_ckpts=1, save_last=True))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
