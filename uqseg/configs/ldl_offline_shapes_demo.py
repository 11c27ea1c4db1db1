# Offline label distribution learning on the shapes demo: as ldl_online_shapes_demo.py, but the
# teacher is a trained model loaded from a checkpoint and frozen (CheckpointTeacherHook), by
# default the CE baseline's own run (uqseg train configs/ce_shapes_demo.py first; the
# comparison, tools/compare_calibration.py, passes each seed's CE checkpoint). The teacher is
# trained, so its share is 0.5 from the first iteration.
#   uqseg train configs/ldl_offline_shapes_demo.py \
#       --cfg-options custom_hooks.0.checkpoint=work_dirs/ce_shapes_demo/iter_800.pth
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./ldl_online_shapes_demo.py']
model = dict(decode_head=dict(loss_decode=dict(warmup_iters=0)))
custom_hooks = [dict(type='CheckpointTeacherHook', checkpoint='work_dirs/ce_shapes_demo/iter_800.pth'),
                dict(type='CheckFiniteLossHook'), dict(type='ResumeRandomStateHook')]
