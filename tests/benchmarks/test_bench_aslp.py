"""Smoke test of ``benchmarks/bench_aslp.py``: it builds the BCE and both ASLP variants of the demo
config from identical weights and times them (figures are not checked here)."""
from tests.helpers.scripts import load_script


def test_bench_aslp_builds_and_times_every_variant(capsys):
    bench = load_script('benchmarks/bench_aslp.py')
    out = bench.main(['--iters', '1', '--rounds', '1', '--warmup', '0', '--batch', '2', '--size', '64'])
    assert set(out['best']) == {'bce', 'aslp-sample', 'aslp-expected'} and all(t > 0 for t in out['best'].values())
    assert 'aslp-expected' in capsys.readouterr().out
