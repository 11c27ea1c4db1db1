# Plain binary cross-entropy baseline for salient object detection, the reference setup of ASLP
# (Liu et al., ICCV 2023): ResNet-50 encoder (UPerNet decoder), 384x384, Adam lr 2.5e-5, batch 10,
# 30 DUTS-TR epochs, flip / small crop / +-15 degree rotation (p=0.2).
#   uqseg train configs/bce_sod.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = [
    './_base_/models/upernet_r50_binary.py',
    './_base_/datasets/sod_duts.py',
    './_base_/schedules/sod_adam_30ep.py',
    'mmseg::_base_/default_runtime.py',
]
default_hooks = dict(checkpoint=dict(save_best='DUTS-TR-val/maxF', rule='greater'))
randomness = dict(seed=0)
