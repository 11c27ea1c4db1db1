# Cross-entropy baseline, CIFAR-10 ResNet-18 (the papers' schedule, _base_/cifar10_resnet18.py).
_base_ = ['./_base_/cifar10_resnet18.py']
