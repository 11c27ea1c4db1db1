# Label smoothing (Szegedy et al., 2016; epsilon 0.1) through mmpretrain's LabelSmoothLoss.
_base_ = ['./_base_/fashion_mnist_demo.py']
model = dict(head=dict(loss=dict(_delete_=True, type='LabelSmoothLoss', label_smooth_val=0.1, mode='original',
                                 loss_weight=1.0)))
