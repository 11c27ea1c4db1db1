# TEDL on CIFAR-10 ResNet-18: cross-entropy for 150 epochs, then EDL with ELU + 1 evidence for 50
# (TEDLHook; KL annealed over 10 epochs from the switch).
_base_ = ['./edl_resnet18_cifar10.py']
model = dict(head=dict(output_layer=dict(evidence='elu')))
custom_hooks = [dict(type='TEDLHook', switch_epoch=150), dict(type='CheckFiniteLossHook')]
