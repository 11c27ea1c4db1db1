"""Smoke test of ``benchmarks/bench_calibration.py`` (figures are not checked: speed targets are
read from the benchmark's own output, not asserted in unit tests)."""
import math

from tests.helpers.scripts import load_script


def test_bench_calibration_runs_and_methods_agree(capsys):
    bench = load_script('benchmarks/bench_calibration.py')
    rows = bench.main(['--pixels', '3e5', '--image-size', '128', '--methods', 'sum,bincount,uqseg,torchmetrics',
                       '--scales', '1'])
    by = {r['method']: r for r in rows}
    assert set(by) == {'sum', 'bincount', 'uqseg', 'torchmetrics'}
    assert all(r['pixels'] == 19 * 128 * 128 and r['seconds'] > 0 for r in rows)
    # the same images reach every method: the ECEs agree (random confidences never sit on a bin edge)
    assert math.isclose(by['uqseg']['value'], by['torchmetrics']['value'], rel_tol=1e-5)
    assert 0 < by['uqseg']['value'] < 0.2
    out = capsys.readouterr().out
    assert 'uqseg vs one-pass sum of p:' in out and 'the histogram step alone' in out
