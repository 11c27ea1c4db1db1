# Two-stage EDL (Li et al., 2022): cross-entropy for 2 epochs, then the EDL loss with ELU + 1
# evidence for the last one (TEDLHook), KL annealed over that epoch (from the switch).
_base_ = ['./edl_fmnist_demo.py']
model = dict(head=dict(output_layer=dict(evidence='elu'), loss=dict(kl_anneal_iters=118)))
custom_hooks = [dict(type='TEDLHook', switch_epoch=2), dict(type='CheckFiniteLossHook')]
