# EDL on CIFAR-10 ResNet-18: ReLU evidence, MSE data term, KL annealed over 10 epochs (Sensoy et al.;
# 391 iterations an epoch at batch 128).
_base_ = ['./_base_/cifar10_resnet18.py']
model = dict(head=dict(type='OutputLayerClsHead', output_layer=dict(type='EDLLayer', evidence='relu'),
                       loss=dict(_delete_=True, type='EDLLoss', data_term='mse', kl_anneal_iters=3910)))
test_evaluator = [dict(type='SelectivePredictionMetric', confidences=('max-prob', 'entropy', 'margin', 'own'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('cifar100', ))]
