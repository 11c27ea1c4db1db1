"""uqseg.seg.metrics.prediction, the one reader of an mmseg sample: set names, probabilities, the
valid mask, top-label maps, saliency maps and per-pixel fields."""
import math

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from tests.helpers.samples import make_sample
from uqseg.seg.metrics.prediction import (
    DEFAULT_SET_NAME,
    DensePrediction,
    as_dict,
    field_tensor,
    read_prediction,
    score_map,
    set_name_of,
)


def test_set_name_from_the_metainfo_or_all():
    assert DEFAULT_SET_NAME == 'all'
    assert set_name_of(make_sample(torch.rand(1, 2, 2), torch.zeros(2, 2).long(), set_name='ECSSD')) == 'ECSSD'
    assert set_name_of(make_sample(torch.rand(1, 2, 2), torch.zeros(2, 2).long(), set_name=None)) == 'all'
    s = SegDataSample(metainfo=dict(set_name='DTD'))
    assert set_name_of(s) == 'DTD' and as_dict(s) == s.to_dict() and as_dict({'a': 1}) == {'a': 1}


def test_binary_prediction_keeps_one_map_and_a_mask_only_with_ignored_pixels():
    p = torch.tensor([[[0.9, 0.5, 0.2]]])
    pred = read_prediction(make_sample(p, torch.tensor([[1, 1, 0]]), img_path='p.jpg'))
    assert isinstance(pred, DensePrediction) and pred.binary and pred.probs is None
    assert pred.path == 'p.jpg' and pred.num_classes == 2 and pred.mask is None and pred.num_valid == 3
    conf, correct = pred.top_label()
    assert conf[0].tolist() == pytest.approx([0.9, 0.5, 0.8])
    assert correct[0].tolist() == [1, 0, 1]  # p = .5 predicts background
    assert pred.prediction()[0].tolist() == [True, False, False]
    pred = read_prediction(make_sample(p, torch.tensor([[1, 255, 0]])))
    assert pred.mask[0].tolist() == [True, False, True] and pred.num_valid == 2


def test_multiclass_prediction_is_the_softmax_of_the_logits():
    logits = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0))
    label = torch.randint(0, 3, (2, 4), generator=torch.Generator().manual_seed(1))
    pred = read_prediction(make_sample(logits, label))
    assert not pred.binary and pred.p is None and pred.num_classes == 3
    torch.testing.assert_close(pred.probs, logits.softmax(0))
    conf, correct = pred.top_label()
    torch.testing.assert_close(conf, logits.softmax(0).max(0).values)
    assert torch.equal(correct, logits.argmax(0) == label)


def test_saliency_map_is_uint8_probability_or_class_index():
    p = torch.tensor([[[0.0, 0.5, 1.0, 0.2]]])
    sal = read_prediction(make_sample(p, torch.zeros(1, 4).long())).saliency_map()
    assert sal.dtype == torch.uint8 and sal.tolist() == [[0, 128, 255, 51]]
    logits = torch.tensor([[[3.0, 0.0]], [[0.0, 0.0]], [[0.0, 3.0]]])
    sal = read_prediction(make_sample(logits, torch.zeros(1, 2).long())).saliency_map()
    assert sal.dtype == torch.uint8 and sal.tolist() == [[0, 2]]
    two = torch.tensor([[[0.0, 2.0, 1.0]], [[0.0, 0.0, 1.0 + math.log(3)]]])  # softmax p_1 = 0.5, 1/(1+e^2), 0.75
    sal = read_prediction(make_sample(two, torch.zeros(1, 3).long())).saliency_map()
    assert sal.tolist() == [[128, round(255 / (1 + math.exp(2))), round(255 * 0.75)]]


def test_sample_without_ground_truth_reads_as_all_ignored_when_allowed():
    s = SegDataSample(metainfo=dict(img_path='n.jpg'))
    s.seg_logits = PixelData(data=torch.rand(1, 3, 4))
    d = s.to_dict()
    with pytest.raises(KeyError):
        read_prediction(d)
    pred = read_prediction(d, require_label=False)
    assert pred.label.shape == (3, 4) and pred.num_valid == 0


def test_field_tensor_and_score_map_of_a_field():
    s = make_sample(torch.full((1, 2, 2), 0.9), torch.ones(2, 2).long(), img_path='f.jpg')
    s['seg_uncertainty'] = dict(data=torch.tensor([[[0.0, 1.0], [2.0, 4.0]]]))
    s['plain'] = torch.zeros(2, 2)
    assert field_tensor(s, 'seg_uncertainty', 'f.jpg').shape == (1, 2, 2)
    assert field_tensor(s, 'plain', 'f.jpg').shape == (2, 2)
    with pytest.raises(KeyError, match="f.jpg: the data sample has no field 'nope'"):
        field_tensor(s, 'nope', 'f.jpg')
    pred = read_prediction(s)
    conf = score_map(pred, s, score_field='seg_uncertainty', score_is='uncertainty', score_range=(0, 4))
    assert conf.flatten().tolist() == pytest.approx([1.0, 0.75, 0.5, 0.0])
    assert score_map(pred, s).flatten().tolist() == pytest.approx([0.9] * 4)
    with pytest.raises(ValueError, match="score='variance' is not a score"):
        score_map(pred, s, score='variance')
