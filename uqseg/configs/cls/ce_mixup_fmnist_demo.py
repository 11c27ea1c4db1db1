# The augmentation control of the LDL rows: cross-entropy on Mixup / CutMix batches (mmpretrain's
# batch augments, one of the two per batch), soft labels from the mixing, no teacher.
_base_ = ['./_base_/fashion_mnist_demo.py']
model = dict(data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.0),
                                                                  dict(type='CutMix', alpha=1.0)])),
             head=dict(loss=dict(_delete_=True, type='CrossEntropyLoss', use_soft=True, loss_weight=1.0)))
