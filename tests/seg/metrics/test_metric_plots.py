"""Pictures the pixel metrics write: reliability diagrams and risk-coverage curves per set, into
plot_dir or the runner's log folder."""
import os

import torch
from mmengine.logging import MMLogger
from mmseg.registry import METRICS

import uqseg  # noqa: F401
from tests.helpers.files import assert_png
from tests.helpers.samples import make_sample


def _samples(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = torch.rand(1, 12, 10, generator=g)
        y = (torch.rand(12, 10, generator=g) < p[0]).long()
        out.append(make_sample(p, y, set_name='DUTS/TE' if i % 2 else 'ECSSD', img_path=f'{i}.jpg'))
    return out


def test_reliability_and_risk_coverage_pngs(tmp_path):
    for cfg in (dict(type='PixelCalibrationMetric', plot_dir=str(tmp_path)),
                dict(type='PixelCalibrationMetric', confidence='positive', plot_dir=str(tmp_path / 'pos')),
                dict(type='PixelUncertaintyMetric', plot_dir=str(tmp_path))):
        m = METRICS.build(cfg)
        for s in _samples():
            m.process({}, [s])
        m.evaluate(4)
    for name in ('reliability_ECSSD.png', 'reliability_DUTS_TE.png', 'risk_coverage_ECSSD.png',
                 'risk_coverage_DUTS_TE.png', 'pos/reliability_ECSSD.png'):
        assert_png(str(tmp_path / name))


def test_plot_true_uses_the_runner_log_folder(tmp_path):
    log_dir = tmp_path / 'work' / '20240101_000000'
    os.makedirs(log_dir)
    MMLogger.get_instance('uqseg_plot_test', log_file=str(log_dir / '20240101_000000.log'))
    m = METRICS.build(dict(type='PixelCalibrationMetric', plot=True, prefix='val'))
    for s in _samples(2):
        m.process({}, [s])
    m.evaluate(2)
    assert_png(str(log_dir / 'uq_plots' / 'val_reliability_ECSSD.png'))
