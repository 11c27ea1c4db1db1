"""Smoke test of ``benchmarks/bench_ldl.py``: both variants train and are timed, and the fit part
streams, fits a temperature near the true one and times the peer (figures are not checked)."""
import math

from tests.helpers.scripts import load_script


def test_bench_ldl_times_both_variants_and_the_fit(capsys):
    out = load_script('benchmarks/bench_ldl.py').main([
        '--iters', '1', '--rounds', '1', '--warmup', '1', '--batch', '2', '--size', '64', '--device', 'cpu',
        '--fit-pixels', '300000', '--chunk', '70000', '--max-samples', '100000', '--classes', '5'])
    it, fit = out['iteration'], out['fit']
    assert set(it['best']) == {'plain', 'ldl'} and math.isfinite(it['ratio']) and it['ratio'] > 0
    assert abs(fit['temperature'] - 2.0) < 0.1
    assert fit['total_s'] > 0 and fit['peer_s'] > 0
    text = capsys.readouterr().out
    assert 'ldl' in text and 'one NLL pass over the same pixels' in text
