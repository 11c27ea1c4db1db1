# A deep ensemble (Lakshminarayanan et al., 2017) of five cross-entropy models of the Fashion-MNIST
# demo trained with seeds 0..4: the mixture of their probabilities, with the mutual information of
# the members as its own score (EnsembleClassifier; members may differ in architecture and kind).
# `uqseg train-members cls/ce_fmnist_demo` trains such members and writes such a config; this one
# reads their last checkpoints (3 epochs) under work_dirs/baselines/fmnist/seed<i>/ce_fmnist_demo/.
# An ensemble is not trained (no train loop here): it is tested or dumped.
#   uqseg dump-outputs cls/ensemble_fmnist_demo --out ensemble.npz
_base_ = ['./ce_fmnist_demo.py']
model = dict(_delete_=True, type='EnsembleClassifier', data_preprocessor=None, members=[
    dict(config='cls/ce_fmnist_demo', checkpoint='work_dirs/baselines/fmnist/seed0/ce_fmnist_demo/epoch_3.pth'),
    dict(config='cls/ce_fmnist_demo', checkpoint='work_dirs/baselines/fmnist/seed1/ce_fmnist_demo/epoch_3.pth'),
    dict(config='cls/ce_fmnist_demo', checkpoint='work_dirs/baselines/fmnist/seed2/ce_fmnist_demo/epoch_3.pth'),
    dict(config='cls/ce_fmnist_demo', checkpoint='work_dirs/baselines/fmnist/seed3/ce_fmnist_demo/epoch_3.pth'),
    dict(config='cls/ce_fmnist_demo', checkpoint='work_dirs/baselines/fmnist/seed4/ce_fmnist_demo/epoch_3.pth')])
train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
test_evaluator = [dict(type='SelectivePredictionMetric',
                       confidences=('max-prob', 'entropy', 'margin', 'own', 'mutual-information', 'expected-entropy',
                                    'class-variance', 'disagreement'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('mnist', ))]
