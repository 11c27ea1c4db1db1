"""``ignore_index`` as several labels (``(255, 254)``: the shapes demo's OOD pixels left out too) in the
pixel metrics: exactly the values of the same samples with 254 relabelled 255 and ``ignore_index=255``."""
import copy
import math

import pytest
import torch

from tests.helpers.metrics import build, run
from tests.helpers.samples import make_sample
from uqseg.seg.metrics.prediction import read_prediction


def _samples(binary, seed=0):
    """Images with 254 and 255 pixels, one with 254 only, one with neither; sets 'S' / 'T'."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(5):
        if binary:
            z = torch.rand(1, 9, 11, generator=g)
            y = (torch.rand(9, 11, generator=g) < z[0]).long()
        else:
            z = torch.randn(3, 9, 11, generator=g) * 2
            noise = torch.randint(0, 3, (9, 11), generator=g)
            y = torch.where(torch.rand(9, 11, generator=g) < 0.6, z.argmax(0), noise)
        if i != 4:
            y[torch.rand(9, 11, generator=g) < 0.2] = 254
        if i not in (3, 4):
            y[torch.rand(9, 11, generator=g) < 0.1] = 255
        out.append(make_sample(z, y, set_name='ST'[i % 2], img_path=f'{i}.jpg'))
    return out


def _relabelled(samples):
    out = copy.deepcopy(samples)
    for s in out:
        y = s['gt_sem_seg']['data']
        y[y == 254] = 255
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k], k


CASES = [('PixelCalibrationMetric', dict(per_image=True, nll_brier=True), False),
         ('PixelCalibrationMetric', dict(per_image=True, nll_brier=True), True),
         ('PixelCalibrationMetric', dict(confidence='positive'), True),  # positive class: binary heads
         ('PixelUncertaintyMetric', dict(), False),
         ('PixelUncertaintyMetric', dict(), True),
         ('PixelUncertaintyMetric', dict(score='entropy', per_image=False), False),
         ('PixelAccuracyMetric', dict(), False),
         ('PixelAccuracyMetric', dict(), True)]


@pytest.mark.parametrize('metric,kw,binary', CASES,
                         ids=[f'{m}-{i}-{"sigmoid" if b else "softmax"}' for i, (m, _, b) in enumerate(CASES)])
def test_two_ignored_labels_equal_relabelling(metric, kw, binary):
    samples = _samples(binary)
    got = run(build(metric, ignore_index=(255, 254), **kw), samples)
    want = run(build(metric, ignore_index=255, **kw), _relabelled(samples))
    _same(got, want)
    # the order of the labels, or a list, does not matter
    _same(run(build(metric, ignore_index=[254, 255], **kw), samples), want)


def test_254_alone_is_an_error_without_the_tuple():
    # the one-channel samples have labels 0..1: 254 outside them, and not ignored
    m = build('PixelAccuracyMetric', ignore_index=255)
    with pytest.raises(ValueError, match=r'ground truth has label 254 outside 0\.\.1 and not ignore_index=255'):
        run(m, _samples(binary=True))
    assert read_prediction(_samples(binary=True)[0], (255, 254)).num_valid < 99


@pytest.mark.parametrize('bad', ['x', (), (255, 'a'), True])
@pytest.mark.parametrize('metric', ['PixelCalibrationMetric', 'PixelUncertaintyMetric', 'PixelAccuracyMetric'])
def test_bad_ignore_index_names_it(metric, bad):
    with pytest.raises(ValueError, match=r'ignore_index must be an int or a sequence of ints, got'):
        run(build(metric, ignore_index=bad), _samples(binary=False)[:1])  # at build or at the first sample


@pytest.mark.parametrize('bad', [255.0, None])
def test_non_iterable_bad_ignore_index_names_it(bad):
    with pytest.raises(ValueError, match='ignore_index'):
        run(build('PixelAccuracyMetric', ignore_index=bad), _samples(binary=False)[:1])
