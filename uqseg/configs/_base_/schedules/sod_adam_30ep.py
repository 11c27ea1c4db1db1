# The reference schedule: Adam, lr 2.5e-5 (constant), batch 10, 30 epochs of the 9,553 DUTS-TR
# training images = 956 iterations an epoch, 28,680 iterations; validation every epoch.
iters_per_epoch = 956
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2.5e-5, weight_decay=0.0), clip_grad=None)
param_scheduler = []
train_cfg = dict(type='IterBasedTrainLoop', max_iters=30 * iters_per_epoch, val_interval=iters_per_epoch)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=iters_per_epoch, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [dict(type='CheckFiniteLossHook'), dict(type='ResumeRandomStateHook')]
