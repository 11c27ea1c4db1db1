"""Property tests (hypothesis) of the pixel-level ranking and calibration metrics against the exact
reference of tests/helpers/exact.py (mpmath, from the definitions): the same inputs as the
image-level ones (logit gaps up to 1,000 in float16 / float32 / float64, permuted duplicate pixels,
near ties, all correct, all wrong), laid out as one (C, 1, N) prediction.

* PixelUncertaintyMetric ranks by key histograms: the exact AUROC and AURC of the exact
  confidences must lie within the histogram's bounds (ConfidenceHistogram.bounds), and its value
  too; the bounds are narrow where the keys are spread.
* PixelCalibrationMetric: ECE against the exact top-label confidences binned from the definition
  (pixels within 1e-6 of a bin edge left out of the example: float32 softmax), NLL against the
  exact log-softmax.
"""
import math
from fractions import Fraction

import mpmath
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings

from tests.helpers.exact import DPS, exact_ranking, exact_row, model_outputs
from tests.helpers.metrics import build, run
from tests.helpers.samples import make_sample
from uqseg.core.accumulators import ConfidenceHistogram

pytestmark = pytest.mark.usefixtures('one_thread')
SETTINGS = dict(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sample(z, labels):
    """The rows of ``z`` as the pixels of one (C, 1, N) prediction."""
    return make_sample(z.t().reshape(z.shape[1], 1, z.shape[0]).contiguous(), labels.reshape(1, -1))


@settings(**SETTINGS)
@given(model_outputs(min_classes=2))
def test_pixel_ranking_metrics_hold_the_exact_values_within_their_bounds(data):
    z, labels = data
    rows = [exact_row(z[i].tolist(), int(labels[i])) for i in range(z.shape[0])]
    correct = (z.to(torch.float64).argmax(1) == labels).long().tolist()
    sample = _sample(z, labels)
    for name in ('max-prob', 'margin', 'entropy'):
        ref = exact_ranking([r[name] for r in rows], correct)
        m = build('PixelUncertaintyMetric', score=name, per_image=False)
        out = run(m, [sample])
        hist = ConfidenceHistogram(m.n_bins, coordinate='key')
        hist.merge(m.image_histogram(sample))
        b = hist.bounds()
        assert b['AURC'][0] - 1e-12 <= ref['AURC'] <= b['AURC'][1] + 1e-12, name
        assert b['AURC'][0] - 1e-12 <= out['A/AURC'] <= b['AURC'][1] + 1e-12, name
        if math.isnan(ref['AUROC']):
            assert math.isnan(out['A/AUROC'])
        else:
            assert b['AUROC'][0] - 1e-12 <= ref['AUROC'] <= b['AUROC'][1] + 1e-12, name
            assert b['AUROC'][0] - 1e-12 <= out['A/AUROC'] <= b['AUROC'][1] + 1e-12, name


def _exact_ece(conf, correct, n_bins):
    """ECE from its definition: bins (k/n, (k+1)/n], 0 in bin 0, exact confidences (mpf)."""
    sums = {}
    for c, ok in zip(conf, correct):
        k = max(0, math.ceil(c * n_bins) - 1)
        cnt, s_conf, s_ok = sums.get(k, (0, mpmath.mpf(0), 0))
        sums[k] = (cnt + 1, s_conf + c, s_ok + ok)
    n = len(conf)
    return float(sum(abs(s_conf - s_ok) for cnt, s_conf, s_ok in sums.values()) / n)


@settings(**SETTINGS)
@given(model_outputs(min_classes=2))
def test_pixel_calibration_metrics_equal_the_exact_values(data):
    z, labels = data
    n_bins = 15
    rows = [exact_row(z[i].tolist(), int(labels[i])) for i in range(z.shape[0])]
    with mpmath.workdps(DPS):
        conf = [r['max-prob'] for r in rows]
        edges = [abs(c * n_bins - round(c * n_bins)) for c in conf]
    assume(all(e > 1e-5 or c == 1 for e, c in zip(edges, conf)))  # float32 softmax near a bin edge
    correct = (z.to(torch.float64).argmax(1) == labels).long().tolist()
    out = run(build('PixelCalibrationMetric', n_bins=n_bins, nll_brier=True), [_sample(z, labels)])
    assert out['A/ECE'] == pytest.approx(_exact_ece(conf, correct, n_bins), abs=1e-6)
    nll = float(Fraction(1, len(rows)) * sum(Fraction(float(r['nll'])) for r in rows))
    assert out['A/NLL'] == pytest.approx(nll, rel=1e-5, abs=1e-6)
    assert 'A/NLL-clamped' not in out  # logits: no clamp
