"""Smoke test of ``benchmarks/bench_members.py`` at a tiny size (M = 1, 2; T = 2): it saves member checkpoints,
loads them into an ``EnsembleSegmentor`` / ``MCDropoutEncoderDecoder``, times them beside the same calls by hand,
measures peak memory in forked processes and prints the table (figures are not checked here)."""
import math

import pytest

from tests.helpers.scripts import load_script


def test_bench_members_times_and_measures_every_variant(capsys, tmp_path):
    bench = load_script('benchmarks/bench_members.py')
    out = bench.main(['--size', '64', '--batch', '1', '--num-classes', '3', '--members', '1', '2', '--passes', '2',
                      '--rounds', '1', '--warmup', '0', '--device', 'cpu', '--json', str(tmp_path / 'members.json')])
    lines = capsys.readouterr().out.splitlines()
    # torch-uncertainty is the bench extra's: without it the peer is skipped, saying so
    variants = {'uqseg', 'hand', 'tu'} if out['peer'] else {'uqseg', 'hand'}
    assert out['peer'] or lines[0] == 'torch-uncertainty not installed: peer skipped'
    sizes = {'ensemble': [1, 2], 'mc': [2]}
    for kind, ns in sizes.items():
        assert list(out['time'][kind]) == ns and list(out['memory'][kind]) == ns
        for n in ns:
            assert set(out['time'][kind][n]) == variants and set(out['memory'][kind][n]) == variants
            assert all(math.isfinite(t) and t > 0 for t in out['time'][kind][n].values())
            assert all(len(r) == 1 for r in out['rounds'][kind][n].values())
            assert all(math.isfinite(m) and m > 0 for m in out['memory'][kind][n].values())
            assert out['weights_mib'][kind][n] > 0
            assert math.isfinite(out['ratios'][kind][n]) and out['ratios'][kind][n] > 0
    # two members' weights are more than one's (the checkpoints are loaded, not shared)
    assert out['weights_mib']['ensemble'][2] > out['weights_mib']['ensemble'][1]
    assert set(out['memory_ratio']) == {'ensemble'} and set(out['memory_ratio']['ensemble']) == variants
    assert (tmp_path / 'members.json').is_file()
    rows = [ln.split() for ln in lines if ln.split()[:1] in (['ensemble'], ['mc']) and ln.split()[1][1:2] == '=']
    assert [r[:2] for r in rows] == [['ensemble', 'M=1'], ['ensemble', 'M=2'], ['mc', 'T=2']]
    assert any(ln.startswith('ensemble time, uqseg / hand: worst') for ln in lines)
    assert any(ln.startswith('ensemble peak beyond weights, M=2 / M=1:') for ln in lines)


def test_bench_members_refuses_one_pass(capsys):
    bench = load_script('benchmarks/bench_members.py')
    with pytest.raises(SystemExit) as e:
        bench.parse_args(['--passes', '1', '2'])
    assert e.value.code == 2 and '--passes must be >= 2' in capsys.readouterr().err
