"""OODDetectionMetric with ``ood_index``: OOD pixels inside the images of a set (label 254 in the shapes
demo) against the set's other valid pixels, per pixel, against scikit-learn and a brute-force FPR."""
import logging
import math

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from sklearn.metrics import roc_auc_score

from tests.helpers.metrics import build, run
from tests.helpers.ranking import auroc_tie_bound, brute_fpr_at_tpr, fpr_bin_bound
from tests.helpers.samples import make_sample
from uqseg.core.accumulators import key_coordinate

K, OOD, IGNORE = 3, 254, 255
PX_KEYS = ('OOD_AUROC_px', 'OOD_FPR@95TPR_px', 'OOD_AUPR_px')


def _ood_image(i, set_name='ood', with_ood=True, h=16, w=20, ignored_logits=None):
    """Confident logits on ID pixels (labels 0..2), uncertain ones on an OOD rectangle (254); a few 255."""
    g = torch.Generator().manual_seed(70 + i)
    y = torch.randint(0, K, (h, w), generator=g)
    logits = torch.randn(K, h, w, generator=g) * 1.5
    logits += 2.5 * torch.nn.functional.one_hot(y, K).permute(2, 0, 1)
    if with_ood:
        r, c = 2 + i % 5, 3 + i % 7
        y[r:r + 6, c:c + 8] = OOD
        logits[:, r:r + 6, c:c + 8] = torch.randn(K, 6, 8, generator=g) * 0.8
    ignored = torch.rand(h, w, generator=g) < 0.08
    y[ignored] = IGNORE
    if ignored_logits is not None:  # what the model predicts on ignored pixels must not matter
        logits[:, ignored] = ignored_logits
    return make_sample(logits, y, set_name=set_name, img_path=f'{set_name}{i}.jpg')


def _reference_confidences(samples):
    """The max-prob ranking key of the valid non-OOD (ID) and of the OOD pixels of the samples, from
    its definition in float64: logit(max p) = -log sum_{j != top} exp(z_j - z_top)."""
    id_conf, ood_conf = [], []
    for s in samples:
        z = s['seg_logits']['data'].double()
        d = z - z.max(0).values
        conf = -torch.logsumexp(torch.where(d == 0, -torch.inf, d), 0)
        y = s['gt_sem_seg']['data'][0]
        id_conf.append(conf[(y != OOD) & (y != IGNORE)])
        ood_conf.append(conf[y == OOD])
    return torch.cat(id_conf).numpy(), torch.cat(ood_conf).numpy()


def _samples(**kw):
    return [_ood_image(i, **kw) for i in range(4)] + [_ood_image(10 + i, set_name='id', with_ood=False)
                                                      for i in range(2)]


def test_pixel_auroc_and_fpr_match_sklearn_and_brute_force():
    samples = _samples()
    out = run(build('OODDetectionMetric', ood_sets=['ood'], ood_index=OOD), samples, batch=3)
    # only the pixel-level keys, only for the OOD set
    assert set(out) == {f'ood/{k}' for k in PX_KEYS}
    id_conf, ood_conf = _reference_confidences([s for s in samples if s['set_name'] == 'ood'])
    assert len(id_conf) > 800 and len(ood_conf) > 150
    is_id = np.r_[np.ones(len(id_conf)), np.zeros(len(ood_conf))]
    want = roc_auc_score(is_id, np.r_[id_conf, ood_conf])
    assert 0.7 < want < 0.99
    # the bins of the metric's histogram: the keys on key_coordinate
    id_x, ood_x = (key_coordinate(torch.from_numpy(c)).numpy() for c in (id_conf, ood_conf))
    tol = auroc_tie_bound(id_x, ood_x)
    assert tol < 5e-3
    assert abs(out['ood/OOD_AUROC_px'] - want) <= tol + 1e-12
    fpr, t = brute_fpr_at_tpr(id_conf, ood_conf, 0.95)
    assert 0 < fpr < 1
    t_x = float(key_coordinate(torch.tensor([t], dtype=torch.float64)))
    assert abs(out['ood/OOD_FPR@95TPR_px'] - fpr) <= fpr_bin_bound(ood_x, t_x) + 1e-12
    assert 0 < out['ood/OOD_AUPR_px'] < 1


def test_ignored_pixels_are_in_neither_group():
    # the model's output on the 255 pixels: very confident, or uniform; neither changes anything
    ref = run(build('OODDetectionMetric', ood_sets=['ood'], ood_index=OOD), _samples())
    for ignored_logits in (torch.tensor([30.0, 0.0, 0.0])[:, None], torch.zeros(K, 1)):
        out = run(build('OODDetectionMetric', ood_sets=['ood'], ood_index=OOD), _samples(ignored_logits=ignored_logits))
        assert out == ref
    # ... whereas counting them as ID would change it
    relabelled = _samples(ignored_logits=torch.zeros(K, 1))
    for s in relabelled:
        y = s['gt_sem_seg']['data']
        y[y == IGNORE] = 0
    out = run(build('OODDetectionMetric', ood_sets=['ood'], ood_index=OOD), relabelled)
    assert out['ood/OOD_AUROC_px'] < ref['ood/OOD_AUROC_px'] - 1e-3


def test_ood_index_must_differ_from_ignore_index():
    for kw in (dict(ood_index=255), dict(ood_index=254, ignore_index=(255, 254)), dict(ood_index='254'),
               dict(ood_index=True)):
        with pytest.raises(ValueError, match=r'ood_index must be an int label other than ignore_index='):
            build('OODDetectionMetric', ood_sets=['ood'], **kw)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_set_without_ood_pixels_is_nan_with_a_warning():
    samples = _samples() + [_ood_image(20 + i, set_name='clean', with_ood=False) for i in range(2)]
    logger, records = MMLogger.get_current_instance(), _Records()
    logger.addHandler(records)  # the metric warns through mmengine's current logger
    try:
        out = run(build('OODDetectionMetric', ood_sets=['ood', 'clean', 'unseen'], ood_index=OOD), samples)
    finally:
        logger.removeHandler(records)
    assert set(out) == {f'{s}/{k}' for s in ('ood', 'clean', 'unseen') for k in PX_KEYS}
    assert all(math.isnan(out[f'clean/{k}']) and math.isnan(out[f'unseen/{k}']) for k in PX_KEYS)
    assert not any(math.isnan(out[f'ood/{k}']) for k in PX_KEYS)
    text = '\n'.join(records.messages)
    assert "set 'clean' not seen, or without ID or OOD (label 254) pixels; its OOD metrics are NaN" in text
    assert "set 'unseen' not seen" in text and "set 'ood'" not in text
