"""uqseg compare-baselines: the rows, seeds, wrapper configs, table and findings (the trainings themselves are the
demo configs' and are not run here)."""
import math

import numpy as np
import pytest
from mmengine.config import Config

from uqseg.cli.compare_baselines import (
    DEMOS,
    compare_baselines,
    findings,
    member_seeds,
    row_table,
    rows_of,
    wrapper_config,
)
from uqseg.cli.configs import find_config


def test_members_of_different_seeds_are_disjoint():
    seen = [set(member_seeds(k, 5)) for k in (0, 1, 2)]
    assert seen[0] == {0, 1, 2, 3, 4} and seen[2] == {10, 11, 12, 13, 14}
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2])


def test_rows_of_each_demo():
    shapes = rows_of(DEMOS['shapes'], 5, 10)
    assert [r.label for r in shapes] == ['single', 'ensemble x5', 'MC dropout T=10', 'TTA (flip)', 'EDL', 'DisMax']
    assert [r.own for r in shapes] == ['max-prob', 'mutual-information', 'mutual-information', 'mutual-information',
                                       'vacuity', 'MMLES']
    cls = rows_of(DEMOS['cls'], 3, 4, methods=['EDL'])
    assert [r.label for r in cls] == ['single', 'ensemble x3', 'MC dropout T=4', 'TTA (flip)', 'EDL']
    assert cls[2].config == 'cls/mc_dropout_fmnist_demo'  # the classifier trains its own dropout


def test_wrapper_config_overrides_evaluator_and_model(tmp_path):
    base = find_config('ce_shapes_demo')
    path = wrapper_config(str(tmp_path / 'w' / 'config.py'), base, DEMOS['sod'].evaluator('mutual-information'),
                          dict(type='MCDropoutEncoderDecoder', passes=4, seed=2))
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'MCDropoutEncoderDecoder' and cfg.model.passes == 4
    assert cfg.model.backbone.type == Config.fromfile(base).model.backbone.type  # merged into the base model
    assert [m['prefix'] for m in cfg.test_evaluator if 'prefix' in m] == ['maxprob', 'own', 'maxprob', 'own']
    assert DEMOS['cls'].evaluator('max-prob')[0]['confidences'] == ('max-prob',)
    assert DEMOS['cls'].evaluator('vacuity')[0]['confidences'] == ('max-prob', 'vacuity')


def _metrics(ece, ood_max, ood_own, miou=80.0):
    return {'test/mIoU': miou, 'test/ECE': ece, 'test/NLL': 2 * ece, 'maxprob/ood/OOD_AUROC_px': ood_max,
            'own/ood/OOD_AUROC_px': ood_own}


def test_table_and_findings_from_metrics():
    demo = DEMOS['shapes']
    rows = rows_of(demo, 5, 10, methods=[])
    results = {'single': {0: _metrics(0.10, 0.70, 0.70), 1: _metrics(0.12, 0.72, 0.72)},
               'ensemble x5': {0: _metrics(0.05, 0.80, 0.85), 1: _metrics(0.07, 0.78, 0.83)},
               'MC dropout T=10': {0: _metrics(0.08, 0.75, 0.70), 1: _metrics(0.20, 0.74, 0.69)},
               'TTA (flip)': {0: _metrics(0.11, 0.70, 0.75), 1: _metrics(0.11, 0.70, 0.75)}}
    md, data = row_table(demo, rows, results)
    lines = md.splitlines()
    assert lines[0].startswith('| method | own score | mIoU % | ECE | NLL |')
    single = next(ln for ln in lines if ln.startswith('| single |'))
    assert '80.00 +- 0.00' in single and f'0.1100 +- {np.std([0.10, 0.12], ddof=1):.4f}' in single
    assert 'n/a' in single  # no AUROC / AURC keys in these metrics
    assert data['ensemble x5']['ECE'] == [0.05, 0.07]
    found = findings(rows, data)
    assert 'holds: ensemble x5 lower ECE than single (0.0600 vs 0.1100)' in found
    assert 'does not hold: MC dropout T=10 between them in ECE (0.1400)' in found
    assert 'holds: ensemble x5 higher OOD AUROC max-p than single (0.7900 vs 0.7100)' in found
    assert 'holds: ensemble x5: mutual information higher OOD AUROC than max-prob (0.8400 vs 0.7900)' in found
    assert 'does not hold: MC dropout T=10: mutual information higher OOD AUROC than max-prob (0.6950 vs 0.7450)' \
        in found
    assert all(not math.isnan(float(f.rsplit('(', 1)[1].split()[0].rstrip(')'))) for f in found)


@pytest.mark.parametrize('kwargs, match', [
    (dict(demo_name='nope', seeds=[0]), "--demo 'nope'"),
    (dict(demo_name='shapes', seeds=[0], members=1), '--members 1'),
    (dict(demo_name='shapes', seeds=[0], passes=1), '--passes 1'),
    (dict(demo_name='shapes', seeds=[0, 0]), '--seeds 0 0'),
    (dict(demo_name='shapes', seeds=[0], methods=['ASLP']), "--methods ASLP: the shapes demo has"),
])
def test_bad_arguments_are_named(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        compare_baselines(work_dir=str(tmp_path), **kwargs)
