"""PerSetIoUMetric: mmseg's IoUMetric computed per test set (``set_name``), with several ignored labels."""
import copy
import math

import pytest
import torch
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

import uqseg  # noqa: F401
from tests.helpers.samples import make_sample
from uqseg.seg.metrics import PerSetIoUMetric

CLASSES = ('background', 'circle', 'square', 'triangle')


def _samples(seed=0, with_ood=False):
    """Predictions of 4 classes, right ~60% of the time, in sets 'S', 'T' and (no set_name) 'all'."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(7):
        y = torch.randint(0, len(CLASSES) - (i % 2), (10, 12), generator=g)  # set 'T' never has class 3
        pred = torch.where(torch.rand(10, 12, generator=g) < 0.6, y, torch.randint(0, len(CLASSES), (10, 12),
                                                                                     generator=g))
        y[torch.rand(10, 12, generator=g) < 0.1] = 255
        if with_ood:
            y[torch.rand(10, 12, generator=g) < 0.15] = 254
        set_name = None if i == 6 else 'ST'[i % 2]
        s = make_sample(torch.zeros(len(CLASSES), 10, 12), y, set_name=set_name, img_path=f'{i}.jpg')
        s['pred_sem_seg'] = dict(data=pred[None])
        out.append(s)
    return out


def _run(metric, samples):
    metric.dataset_meta = dict(classes=CLASSES)
    for i in range(0, len(samples), 3):
        metric.process({}, samples[i:i + 3])
    return metric.compute_metrics(metric.results)


def _mmseg_per_set(samples, **kw):
    out = {}
    for name in ('S', 'T', 'all'):
        sel = [s for s in samples if s.get('set_name', 'all') == name]
        for k, v in _run(IoUMetric(**kw), sel).items():
            out[f'{name}/{k}'] = v
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k], k


@pytest.mark.parametrize('kw', [dict(), dict(iou_metrics=['mIoU', 'mDice', 'mFscore']), dict(nan_to_num=0)])
def test_each_set_equals_mmseg_iou_metric_on_that_set_alone(kw):
    samples = _samples()
    m = METRICS.build(dict(type='PerSetIoUMetric', **kw))
    assert isinstance(m, PerSetIoUMetric)
    got = _run(m, samples)
    _same(got, _mmseg_per_set(samples, **kw))
    assert {k.split('/')[0] for k in got} == {'S', 'T', 'all'}
    assert got['S/mIoU'] != got['T/mIoU']  # the sets really differ
    # mmseg's own metric pools every set
    pooled = _run(IoUMetric(**kw), samples)
    assert all(pooled[k] != got[f'S/{k}'] or pooled[k] != got[f'T/{k}'] for k in pooled)


def test_two_ignored_labels_equal_mmseg_on_relabelled_samples():
    samples = _samples(seed=1, with_ood=True)
    relabelled = copy.deepcopy(samples)
    for s in relabelled:
        y = s['gt_sem_seg']['data']
        y[y == 254] = 255
    got = _run(METRICS.build(dict(type='PerSetIoUMetric', ignore_index=(255, 254))), samples)
    _same(got, _mmseg_per_set(relabelled))
    # with 254 not ignored, mmseg counts the predictions on those pixels as false positives
    plain = _run(METRICS.build(dict(type='PerSetIoUMetric')), samples)
    assert plain['S/mIoU'] < got['S/mIoU'] and plain['T/mIoU'] < got['T/mIoU']
    # the samples themselves are left as they were
    assert any(bool((s['gt_sem_seg']['data'] == 254).any()) for s in samples)


def test_bad_ignore_index_names_it():
    for bad in ('x', ()):
        with pytest.raises(ValueError, match='ignore_index must be an int or a sequence of ints'):
            METRICS.build(dict(type='PerSetIoUMetric', ignore_index=bad))


def test_output_dir_and_format_only_are_refused_naming_the_alternative(tmp_path):
    for kwargs in (dict(output_dir=str(tmp_path / 'uqseg')), dict(format_only=True)):
        with pytest.raises(ValueError, match=r'does not write predictions .* uqseg test --out'):
            PerSetIoUMetric(**kwargs)
