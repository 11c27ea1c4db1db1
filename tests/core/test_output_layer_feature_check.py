"""Issue 19: features whose channel count is not the output layer's ``in_channels`` are an error naming
the layer, the key and both sizes (before, DisMax / IsoMax+ failed inside ``einsum`` / ``conv2d`` with
a shape message that named neither)."""
import re

import pytest
import torch

from uqseg.core.output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer
from uqseg.core.prototype_distance import prototype_distances

LAYERS = [EDLLayer, DisMaxLayer, IsoMaxPlusLayer]


@pytest.mark.parametrize('cls', LAYERS)
@pytest.mark.parametrize('shape', [(3, 7), (2, 7, 4, 5)], ids=['rows', 'maps'])
def test_wrong_feature_width_names_in_channels_and_both_sizes(cls, shape):
    layer = cls(5, 3)
    x = torch.randn(*shape)
    want = (f'{cls.__name__}: in_channels=5 but the features have 7 channels (dim 1 of {tuple(shape)}); '
            'set in_channels=7')
    with pytest.raises(ValueError, match='^' + re.escape(want)):
        layer(x)


@pytest.mark.parametrize('cls', LAYERS)
def test_matching_features_still_pass_and_other_ranks_are_refused(cls):
    layer = cls(5, 3)
    assert layer(torch.randn(4, 5)).shape == (4, 3)
    assert layer(torch.randn(2, 5, 3, 2)).shape == (2, 3, 3, 2)
    with pytest.raises(ValueError, match=rf'{cls.__name__} expects \(N, D, H, W\) or \(N, D\) features, got '
                                         r'\(2, 5, 3\)'):
        layer(torch.randn(2, 5, 3))


def test_prototype_distances_checks_the_feature_width():
    p, s = torch.randn(3, 4), torch.ones(1)
    assert prototype_distances(torch.randn(2, 4, 3), p, s, dim=1).shape == (2, 3, 3)
    assert prototype_distances(torch.randn(2, 3, 4), p, s, dim=-1).shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r'prototype_distances: features \(2, 6\) need as many channels on dim 1 '
                                         r'as the prototypes \(3, 4\)'):
        prototype_distances(torch.randn(2, 6), p, s)
