# TEDL (Li et al. 2022) on the shapes demo: cross-entropy for the first 400 iterations, then the
# EDL loss with ELU evidence (e = ELU(f) + 1) for the last 400 (TEDLHook switches the EDL layer's
# stage; the KL annealing starts at the switch). Validation before the switch reads plain logits.
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./edl_shapes_demo.py']
model = dict(decode_head=dict(output_layer=dict(evidence='elu')))
custom_hooks = [dict(type='CheckFiniteLossHook'), dict(type='ResumeRandomStateHook'),
                dict(type='TEDLHook', switch_iter=400)]
