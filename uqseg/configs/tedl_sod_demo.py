# TEDL on the SOD demo: cross-entropy on the two-class head for 600 of the 1,200 iterations, then EDL
# with ELU evidence (TEDLHook; the KL annealing starts at the switch).
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./edl_sod_demo.py']
model = dict(decode_head=dict(output_layer=dict(evidence='elu')))
custom_hooks = [dict(type='CheckFiniteLossHook'), dict(type='ResumeRandomStateHook'),
                dict(type='TEDLHook', switch_iter=600)]
