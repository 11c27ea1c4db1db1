"""Smoke test of ``benchmarks/bench_output_layers.py``: it builds the plain segmentor and one per output
layer from shared weights, times them and prints the table (figures are not checked here)."""
import math

from tests.helpers.scripts import load_script


def test_bench_output_layers_builds_and_times_every_variant(capsys):
    bench = load_script('benchmarks/bench_output_layers.py')
    out = bench.main(['--iters', '1', '--rounds', '1', '--warmup', '0', '--batch', '2', '--size', '64',
                      '--num-classes', '3', '--device', 'cpu'])
    names = {'plain', 'edl', 'tedl-2', 'dismax', 'isomax+'}
    assert set(out['best']) == names and all(t > 0 for t in out['best'].values())
    assert out['ratios']['plain'] == 1.0 and all(math.isfinite(r) and r > 0 for r in out['ratios'].values())
    lines = capsys.readouterr().out.splitlines()
    rows = {ln.split()[0]: ln for ln in lines if ln.split() and ln.split()[0] in names}
    assert set(rows) == names
    for name in names:  # best ms/iter and its ratio, both finite numbers
        cells = rows[name].split()
        numbers = [float(c) for c in cells if c.replace('.', '', 1).isdigit()]
        assert len(numbers) >= 4 and all(math.isfinite(x) for x in numbers)
    assert lines[-1].startswith('worst ratio to plain:') and out['worst'] in lines[-1]
