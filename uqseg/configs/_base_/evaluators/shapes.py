# Evaluation on the shapes demo. Validation: per-set mIoU, pixel accuracy, calibration (15 bins).
# Test, per set (test, shift, ood): mIoU / aAcc, pooled calibration (ECE, NLL, ...), misclassification
# detection (AUROC, AURC, ...) ranked by max-prob (prefix maxprob/) and by the head's own score
# (prefix own/: EDL vacuity, DisMax MMLES, IsoMax+ MDS, max-prob for a plain head), and OOD pixel
# detection in the ood set (its unseen-class pixels, label 254, against its other pixels) by both.
# The OOD pixels are left out of every other metric (ignore_index=(255, 254)).
ignore = (255, 254)
val_evaluator = [
    dict(type='PerSetIoUMetric', iou_metrics=['mIoU']),
    dict(type='PixelAccuracyMetric'),
    dict(type='PixelCalibrationMetric', n_bins=15, per_image=False),
]
test_evaluator = [
    dict(type='PerSetIoUMetric', iou_metrics=['mIoU'], ignore_index=ignore),
    dict(type='PixelCalibrationMetric', n_bins=15, nll_brier=True, ignore_index=ignore),
    dict(type='PixelUncertaintyMetric', score='max-prob', per_image=False, ignore_index=ignore, prefix='maxprob'),
    dict(type='PixelUncertaintyMetric', score='own', per_image=False, ignore_index=ignore, prefix='own'),
    dict(type='OODDetectionMetric', ood_sets=['ood'], ood_index=254, score='max-prob', prefix='maxprob'),
    dict(type='OODDetectionMetric', ood_sets=['ood'], ood_index=254, score='own', prefix='own'),
]
