"""uqseg.core.plots draws the accumulators' reliability data and risk-coverage curves to PNG."""
import torch

from tests.helpers.files import assert_png
from uqseg.core.accumulators import CalibrationAccumulator, ConfidenceHistogram
from uqseg.core.binning import reliability
from uqseg.core.plots import plot_reliability_diagram, plot_risk_coverage


def _data(n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(n, generator=g, dtype=torch.float64)
    return conf, torch.rand(n, generator=g, dtype=torch.float64) < conf ** 2


def test_reliability_diagram_from_the_accumulator_or_from_sums(tmp_path):
    conf, correct = _data()
    acc = CalibrationAccumulator(10)
    acc.update(conf, correct)
    a = plot_reliability_diagram(acc.reliability(), str(tmp_path / 'a.png'), title='demo', metrics=acc.compute())
    b = plot_reliability_diagram(reliability(acc.state), str(tmp_path / 'sub' / 'b.png'),
                                 xlabel='predicted probability', ylabel='frequency of the positive class')
    assert a == str(tmp_path / 'a.png')
    assert_png(a)
    assert_png(b)
    # empty bins (NaN accuracy) and an accumulator without data draw too
    sparse = CalibrationAccumulator(15)
    sparse.update(torch.tensor([0.95, 0.97]), torch.tensor([1, 0]))
    assert_png(plot_reliability_diagram(sparse.reliability(), str(tmp_path / 'c.png')))


def test_risk_coverage_plot_from_the_histogram(tmp_path):
    conf, correct = _data(seed=1)
    h = ConfidenceHistogram(1000)
    h.update(conf, correct)
    path = plot_risk_coverage(h.risk_coverage(), str(tmp_path / 'rc.png'), title='demo', metrics=h.compute())
    assert_png(path)
    assert_png(plot_risk_coverage(ConfidenceHistogram(10).risk_coverage(), str(tmp_path / 'empty.png')))
