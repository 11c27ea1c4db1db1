# Offline label distribution learning (Hong et al., 2023, "Aug-SL"): the trained cross-entropy
# model's softmax on the same Mixup / CutMix batch is the target (teacher weight 1).
_base_ = ['./kd_fmnist_demo.py']
model = dict(data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.0),
                                                                  dict(type='CutMix', alpha=1.0)])))
