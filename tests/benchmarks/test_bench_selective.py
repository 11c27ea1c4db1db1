"""Smoke test of ``benchmarks/bench_selective.py`` at a tiny size: the metrics agree with the peer within
the stated tolerances, the fallback formulas match the functional core, and the file part times the
tool and np.load (figures are not checked: speed targets are read from the benchmark's output)."""
import importlib.util
import math

import numpy as np
import torch

from tests.helpers.scripts import load_script
from uqseg.core import functional as F


def test_bench_selective_runs_and_agrees_with_the_peer(capsys, tmp_path):
    bench = load_script('benchmarks/bench_selective.py')
    res = bench.main(['--samples', '5000', '--file-samples', '3000', '--file-classes', '5', '--big', '400x50',
                      '--repeats', '1', '--tmp', str(tmp_path)])
    m = res['metrics']
    # the peer is torch-uncertainty where it is installed (pip install -e ".[bench]"), else Galil's formulas
    have_peer = importlib.util.find_spec('torch_uncertainty') is not None
    assert m['samples'] == 5000 and m['ties'] == 0 and ('torch-uncertainty' in m['peer']) == have_peer
    assert have_peer or 'Galil et al.' in m['peer']
    assert set(m['agree']) == {'aurc', 'auroc', 'coverage_at_accuracy'}
    assert all(a['ok'] for a in m['agree'].values()), m['agree']
    assert m['fused_equal']
    assert [(f['samples'], f['classes']) for f in res['files']] == [(3000, 5), (400, 50)]
    assert all(f['load_s'] > 0 and f['eval_s'] > 0 and math.isfinite(f['ratio']) and 0 < f['aurc'] < 1
               for f in res['files'])
    out = capsys.readouterr().out
    assert ('peer: torch-uncertainty' in out) == have_peer and 'uqseg eval-selective FILE vs np.load' in out


def test_galil_fallback_formulas_equal_the_functional_values_without_ties():
    bench = load_script('benchmarks/bench_selective.py')
    g = torch.Generator().manual_seed(1)
    conf = torch.rand(3000, generator=g, dtype=torch.float64)
    correct = torch.rand(3000, generator=g, dtype=torch.float64) < conf
    got = bench.galil_metrics(conf.numpy(), correct.numpy(), 0.9)
    assert np.isclose(got['AURC'], F.aurc(conf, correct), rtol=1e-12)
    assert np.isclose(got['AUROC'], F.auroc(conf, correct), rtol=1e-12)
    assert got['coverage'] == F.coverage_at_accuracy(conf, correct, 0.9)
