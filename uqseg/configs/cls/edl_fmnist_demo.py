# Evidential deep learning (Sensoy et al., 2018): ReLU evidence, the MSE data term, the KL term
# annealed over the first 2 of 3 epochs (236 iterations of 118).
_base_ = ['./_base_/fashion_mnist_demo.py']
model = dict(head=dict(type='OutputLayerClsHead', output_layer=dict(type='EDLLayer', evidence='relu'),
                       loss=dict(_delete_=True, type='EDLLoss', data_term='mse', kl_anneal_iters=236)))
test_evaluator = [dict(type='SelectivePredictionMetric', confidences=('max-prob', 'entropy', 'margin', 'own'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('mnist', ))]
