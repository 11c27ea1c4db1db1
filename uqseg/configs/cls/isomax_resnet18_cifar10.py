# IsoMax+ on CIFAR-10 ResNet-18 (entropic scale 10, no mosaic).
_base_ = ['./_base_/cifar10_resnet18.py']
model = dict(head=dict(type='OutputLayerClsHead', output_layer=dict(type='IsoMaxPlusLayer'),
                       loss=dict(_delete_=True, type='DisMaxLoss', entropic_scale=10.0)))
test_evaluator = [dict(type='SelectivePredictionMetric', confidences=('max-prob', 'entropy', 'margin', 'own'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('cifar100', ))]
