# Cross-entropy baseline on the Fashion-MNIST demo (MNIST digits as the OOD set).
#   uqseg train configs/cls/ce_fmnist_demo.py
_base_ = ['./_base_/fashion_mnist_demo.py']
