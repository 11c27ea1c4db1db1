# Offline label distribution learning on the SOD demo: as ldl_online_sod_demo.py with a trained,
# frozen teacher from a checkpoint (CheckpointTeacherHook), by default bce_sod_demo.py's own run
# (train it first; tools/compare_calibration.py --demo sod passes each seed's checkpoint), its
# share 0.5 from the first iteration.
#   uqseg train configs/ldl_offline_sod_demo.py \
#       --cfg-options custom_hooks.0.checkpoint=work_dirs/bce_sod_demo/iter_1200.pth
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./ldl_online_sod_demo.py']
model = dict(decode_head=dict(loss_decode=dict(warmup_iters=0)))
custom_hooks = [dict(type='CheckpointTeacherHook', checkpoint='work_dirs/bce_sod_demo/iter_1200.pth'),
                dict(type='CheckFiniteLossHook'), dict(type='ResumeRandomStateHook')]
