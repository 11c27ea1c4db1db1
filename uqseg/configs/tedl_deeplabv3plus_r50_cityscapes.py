# TEDL (Li et al. 2022) on the set-up of edl_deeplabv3plus_r50_cityscapes.py: cross-entropy for the
# first 40k iterations, then the EDL loss with ELU evidence for the last 40k (TEDLHook; the KL
# annealing starts at the switch). Validation in stage 1 reads plain logits (mIoU only).
#   bash tools/dist_train.sh configs/tedl_deeplabv3plus_r50_cityscapes.py 4
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./edl_deeplabv3plus_r50_cityscapes.py']
model = dict(decode_head=dict(output_layer=dict(evidence='elu')))
custom_hooks = [dict(type='CheckFiniteLossHook'), dict(type='ResumeRandomStateHook'),
                dict(type='TEDLHook', switch_iter=40000)]
