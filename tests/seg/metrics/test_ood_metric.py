"""OODDetectionMetric: ID-vs-OOD detection per image and per pixel against scikit-learn."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from tests.helpers.metrics import build, flat, ood_samples, run


def test_image_and_pixel_level_match_sklearn():
    # a 64-step grid: every distinct confidence in its own bin of the key histogram
    samples = ood_samples(quantize=64)
    out = run(build('OODDetectionMetric', ood_sets=['DTD']), samples, batch=3)
    img, is_id, px, px_id = [], [], [], []
    for s in samples:
        p, _ = flat([s])
        conf = torch.maximum(p, 1 - p)
        img.append(float(conf.double().mean()))
        is_id.append(0 if s['set_name'] == 'DTD' else 1)
        px.append(conf)
        px_id.append(torch.full_like(conf, is_id[-1]))
    img, is_id = np.array(img), np.array(is_id)
    assert out['DTD/OOD_AUROC'] == pytest.approx(roc_auc_score(is_id, img), abs=1e-12)
    assert out['DTD/OOD_AUPR'] == pytest.approx(average_precision_score(1 - is_id, -img), abs=1e-12)
    fpr, tpr, _ = roc_curve(is_id, img)
    assert out['DTD/OOD_FPR@95TPR'] == pytest.approx(fpr[np.searchsorted(tpr, 0.95)], abs=1e-12)
    px, px_id = torch.cat(px).numpy(), torch.cat(px_id).numpy()
    assert out['DTD/OOD_AUROC_px'] == pytest.approx(roc_auc_score(px_id, px), abs=1e-10)
    assert out['DTD/OOD_AUPR_px'] == pytest.approx(average_precision_score(1 - px_id, -px), abs=1e-10)
    fpr, tpr, _ = roc_curve(px_id, px)
    assert out['DTD/OOD_FPR@95TPR_px'] == pytest.approx(fpr[np.searchsorted(tpr, 0.95)], abs=1e-10)


def test_id_sets_median_score_and_missing_sets():
    samples = ood_samples(seed=14)
    only1 = run(build('OODDetectionMetric', id_sets=['ID1'], image_score='median'), samples)
    img = [float(torch.maximum(p, 1 - p).median()) for p, _ in (flat([s]) for s in samples)]
    lab = [1 if s['set_name'] == 'ID1' else 0 for s in samples]
    keep = [i for i, s in enumerate(samples) if s['set_name'] in ('ID1', 'DTD')]
    assert only1['DTD/OOD_AUROC'] == pytest.approx(
        roc_auc_score([lab[i] for i in keep], [img[i] for i in keep]), abs=1e-12)
    out = run(build('OODDetectionMetric', ood_sets=['DTD', 'Places']), samples)
    assert math.isnan(out['Places/OOD_AUROC']) and math.isnan(out['Places/OOD_AUROC_px'])
    out = run(build('OODDetectionMetric'), [s for s in samples if s['set_name'] == 'DTD'])
    assert all(math.isnan(v) for v in out.values())  # no ID data
    with pytest.raises(ValueError, match='both id_sets and ood_sets'):
        build('OODDetectionMetric', ood_sets=['DTD'], id_sets=['DTD'])
