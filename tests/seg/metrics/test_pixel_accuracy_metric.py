"""PixelAccuracyMetric (the Acc_val ASLPHook reads): top-label accuracy over the valid pixels of each
set, with the 0.5 threshold for one-channel heads and ignored pixels left out."""
import math

import pytest
import torch

from tests.helpers.metrics import build, run
from tests.helpers.samples import make_sample
from uqseg.seg.metrics import PixelAccuracyMetric


def _accuracy_sample(n_correct, n_total, set_name='held-out', img_path='x.jpg'):
    """Foreground everywhere; the first n_total - n_correct pixels predicted background."""
    prob = torch.full((1, 1, n_total), 0.9)
    prob[..., :n_total - n_correct] = 0.2
    return make_sample(prob, torch.ones(1, n_total, dtype=torch.long), set_name=set_name, img_path=img_path)


def test_accuracy_per_set_pooled_over_pixels():
    samples = [_accuracy_sample(9, 10, img_path='a.jpg'), _accuracy_sample(1, 2, img_path='b.jpg'),
               _accuracy_sample(0, 4, set_name='other-set')]
    out = run(build('PixelAccuracyMetric'), samples)
    assert out == {'held-out/PixelAcc': pytest.approx(10 / 12), 'other-set/PixelAcc': 0.0}


def test_one_channel_heads_are_thresholded_at_one_half():
    # p > .5 is foreground; p = .5 is background (argmax of [1 - p, p] takes the first on a tie);
    # .4 is background although mmseg's default threshold of one-channel heads (.3) says foreground
    p = torch.tensor([[[0.51, 0.5, 0.4, 0.49, 0.9]]])
    y = torch.tensor([[1, 1, 1, 0, 1]])  # right, wrong, wrong, right, right
    assert run(build('PixelAccuracyMetric'), [make_sample(p, y)]) == {'A/PixelAcc': pytest.approx(3 / 5)}


def test_multiclass_heads_use_the_argmax():
    logits = torch.tensor([[[2.0, 0.0, 0.0]], [[0.0, 2.0, 0.0]], [[0.0, 0.0, 2.0]]])  # predicts 0, 1, 2
    out = run(build('PixelAccuracyMetric'), [make_sample(logits, torch.tensor([[0, 2, 2]]))])
    assert out['A/PixelAcc'] == pytest.approx(2 / 3)


def test_ignored_pixels_are_left_out():
    p = torch.tensor([[[0.9, 0.2, 0.9, 0.9]]])
    y = torch.tensor([[1, 1, 255, 0]])  # 2 of the 3 valid pixels wrong, one ignored
    assert run(build('PixelAccuracyMetric'), [make_sample(p, y)])['A/PixelAcc'] == pytest.approx(1 / 3)
    # another ignore_index: the pixels labelled 0 are left out
    y = torch.tensor([[1, 1, 0, 0]])
    assert run(build('PixelAccuracyMetric', ignore_index=0), [make_sample(p, y)])['A/PixelAcc'] == pytest.approx(0.5)


def test_set_without_valid_pixel_is_nan_and_default_set_is_all():
    empty = make_sample(torch.rand(1, 2, 2), torch.full((2, 2), 255), set_name='E')
    plain = make_sample(torch.full((1, 1, 2), 0.9), torch.tensor([[1, 0]]), set_name=None)
    out = run(build('PixelAccuracyMetric'), [empty, plain])
    assert set(out) == {'E/PixelAcc', 'all/PixelAcc'}
    assert math.isnan(out['E/PixelAcc']) and out['all/PixelAcc'] == pytest.approx(0.5)


def test_calculate_sums_the_counts_of_each_set():
    rows = [('A', 3, 4), ('B', 0, 0), ('A', 1, 4), ('C', 5, 5)]
    out = PixelAccuracyMetric.calculate(rows)
    assert list(out) == ['A', 'B', 'C']
    assert out['A'] == pytest.approx(0.5) and math.isnan(out['B']) and out['C'] == 1.0
    # process keeps exactly these rows
    m = build('PixelAccuracyMetric')
    m.process({}, [_accuracy_sample(3, 4, set_name='A')])
    assert m.results == [('A', 3, 4)]


def test_bad_inputs_raise_naming_the_image_and_add_nothing():
    m = build('PixelAccuracyMetric')
    with pytest.raises(ValueError, match=r'q.jpg: ground truth has label 3 outside 0..1'):
        m.process({}, [make_sample(torch.rand(1, 1, 2), torch.tensor([[0, 3]]), img_path='q.jpg')])
    assert m.results == []
