"""The reliability diagram draws what the accumulator holds, in both directions: the blue bar's top
is the accuracy, the black line the mean confidence, the hatched gap spans the two."""
import numpy as np
import torch

from uqseg.core.accumulators import CalibrationAccumulator
from uqseg.core.plots import draw_reliability, new_figure, plot_reliability_diagram


def _bins():
    # bin 5 (0.5-0.6]: conf .55, 1 of 2 right (acc .5, over-confident); bin 8: conf .85, 2 of 2
    # right (acc 1, under-confident); bin 9: conf .95 and right (under-confident); others empty
    conf = torch.tensor([0.55, 0.55, 0.85, 0.85, 0.95])
    correct = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])
    acc = CalibrationAccumulator(10)
    acc.update(conf, correct)
    return acc.reliability()


def test_bars_lines_and_gaps_are_the_accuracy_and_confidence_of_each_bin():
    fig = new_figure(4, 4)
    art = draw_reliability(fig.add_subplot(1, 1, 1), _bins())
    tops = [(round(p.get_x() + p.get_width() / 2, 6), p.get_y() + p.get_height()) for p in art['accuracy']]
    assert tops == [(0.55, 0.5), (0.85, 1.0), (0.95, 1.0)]  # empty bins draw nothing
    segments = art['confidence'].get_segments()
    np.testing.assert_allclose([s[0][1] for s in segments], [0.55, 0.85, 0.95], rtol=1e-6)
    np.testing.assert_allclose([(s[0][0], s[1][0]) for s in segments], [(0.5, 0.6), (0.8, 0.9), (0.9, 1.0)])
    over = [(p.get_y(), p.get_y() + p.get_height()) for p in art['over']]
    np.testing.assert_allclose(over, [(0.5, 0.55)], rtol=1e-6)  # above the bar, up to the confidence
    under = [(p.get_y(), p.get_y() + p.get_height()) for p in art['under']]
    np.testing.assert_allclose(under, [(0.85, 1.0), (0.95, 1.0)], rtol=1e-6)  # inside the bar
    assert all(p.get_facecolor()[3] == 0 for p in art['under'])  # unfilled: the bar stays blue


def test_plot_writes_a_png(tmp_path):
    path = plot_reliability_diagram(_bins(), str(tmp_path / 'r.png'), title='t', metrics=dict(ECE=0.1))
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
