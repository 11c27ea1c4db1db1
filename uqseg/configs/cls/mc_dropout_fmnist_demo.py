# MC dropout (Gal & Ghahramani, 2016) on the Fashion-MNIST demo: the cross-entropy baseline with
# dropout 0.2 before its linear layer (OutputLayerClsHead without an output layer is LinearClsHead
# plus dropout; trained with it, the same state dict otherwise), tested with T = 10 seeded passes
# of the dropout (MCDropoutImageClassifier): the mean probability and the mutual information.
#   uqseg train cls/mc_dropout_fmnist_demo
#   uqseg dump-outputs cls/mc_dropout_fmnist_demo work_dirs/mc_dropout_fmnist_demo/epoch_3.pth --out mc.npz
_base_ = ['./ce_fmnist_demo.py']
model = dict(type='MCDropoutImageClassifier', passes=10, seed=0,
             head=dict(type='OutputLayerClsHead', dropout=0.2))
test_evaluator = [dict(type='SelectivePredictionMetric',
                       confidences=('max-prob', 'entropy', 'margin', 'own', 'mutual-information', 'expected-entropy',
                                    'class-variance', 'disagreement'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('mnist', ))]
