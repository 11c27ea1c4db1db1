# The shapes demo schedule: AdamW, lr 2e-3 with poly decay, batch 8, 800 iterations (16 epochs of
# the 400 training images), validation every 200 iterations, last checkpoint kept.
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4), clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=800, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=800, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=400, max_keep_ckpts=1, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [dict(type='CheckFiniteLossHook'), dict(type='ResumeRandomStateHook')]
