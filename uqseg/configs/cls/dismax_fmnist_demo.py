# DisMax (Macedo & Ludermir, 2022) with the FPR mosaic regularisation: distance logits to learnt
# prototypes, entropic scale 10; the second half of each batch is made of 2x2 mosaics of four
# images with a quarter of each quadrant's label (FPRMosaic), the loss KL on those rows.
_base_ = ['./_base_/fashion_mnist_demo.py']
model = dict(data_preprocessor=dict(batch_augments=dict(augments=dict(type='FPRMosaic'))),
             head=dict(type='OutputLayerClsHead', output_layer=dict(type='DisMaxLayer'),
                       loss=dict(_delete_=True, type='DisMaxLoss', entropic_scale=10.0)))
test_evaluator = [dict(type='SelectivePredictionMetric', confidences=('max-prob', 'entropy', 'margin', 'own'),
                       accuracy_targets=(0.95, 0.99), coverages=(0.5, 0.8, 0.9), ood_sets=('mnist', ))]
