# The plain baseline of the heads comparison: FCN (ResNetV1c-18, half width) with its 1x1 conv_seg
# and cross-entropy, on the multiclass shapes demo (CPU: 2 minutes on one thread).
#   uqseg make-demo-data --only shapes && uqseg train configs/ce_shapes_demo.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = [
    './_base_/models/r18_half_fcn_shapes.py',
    './_base_/datasets/shapes_demo.py',
    './_base_/schedules/shapes_adamw_800it.py',
    './_base_/evaluators/shapes.py',
    'mmseg::_base_/default_runtime.py',
]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
