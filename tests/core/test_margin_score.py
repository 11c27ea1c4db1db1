"""The 'margin' score of uqseg.core.scores: p_(1) - p_(2) of softmax(z), for every output kind,
against a numpy formula; its confidence is the raw score as is."""
import numpy as np
import pytest
import torch

from uqseg.core.scores import (
    BUILTIN_SCORES,
    OUTPUT_KINDS,
    SCORE_KINDS,
    SCORES,
    check_score_available,
    raw_score,
    score_confidence,
    scores_of,
    top2_margin,
)

pytestmark = pytest.mark.usefixtures('one_thread')


def _numpy_margin(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis, keepdims=True))
    p = np.sort(e / e.sum(axis, keepdims=True), axis)
    return np.take(p, -1, axis) - np.take(p, -2, axis)


def test_margin_is_a_score_of_every_kind():
    assert 'margin' in SCORES and 'margin' in BUILTIN_SCORES
    assert set(SCORE_KINDS['margin']) == set(OUTPUT_KINDS)
    for kind in OUTPUT_KINDS:
        assert 'margin' in scores_of(kind)
        check_score_available('margin', kind)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_margin_matches_numpy_on_rows_and_maps(dtype):
    g = torch.Generator().manual_seed(0)
    z = (3 * torch.randn(300, 7, generator=g)).to(dtype)
    got = raw_score('margin', z, dim=1)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(got.double().numpy(), _numpy_margin(z.double().numpy(), 1), atol=tol, rtol=0)
    zm = (3 * torch.randn(7, 5, 6, generator=g)).to(dtype)
    gm = raw_score('margin', zm, dim=0)
    assert gm.shape == (5, 6)
    np.testing.assert_allclose(gm.double().numpy(), _numpy_margin(zm.double().numpy(), 0), atol=tol, rtol=0)


def test_margin_hand_worked_and_edge_cases():
    # p = (.5, .25, .25): margin .25; a tie at the top: 0; one class: 1
    z = torch.log(torch.tensor([[2.0, 1.0, 1.0], [1.0, 1.0, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(raw_score('margin', z), torch.tensor([0.25, 0.0], dtype=torch.float64))
    assert top2_margin(torch.ones(4, 1)).tolist() == [1.0] * 4
    # distance logits (<= 0) and log alpha (>= 0) alike: only softmax(z) matters
    L = -torch.tensor([[1.0, 2.0, 5.0]], dtype=torch.float64)
    p = L.softmax(1)[0]
    assert raw_score('margin', L).item() == pytest.approx(float(p[0] - p[1]))


def test_margin_confidence_is_as_is():
    g = torch.Generator().manual_seed(1)
    raw = raw_score('margin', torch.randn(100, 4, generator=g))
    assert torch.equal(score_confidence('margin', raw, 4), raw)
    assert bool(((raw >= 0) & (raw <= 1)).all())
