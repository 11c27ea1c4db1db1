"""tools/compare_heads.py: its tables are the mean and sample std over seeds of each run's metrics."""
import numpy as np
import pytest

from tests.helpers.scripts import load_script


def _run(seed, shift):
    m = {}
    for s in ('test', 'shift'):
        for k in ('mIoU', 'aAcc', 'ECE', 'NLL'):
            m[f'{s}/{k}'] = 10.0 * seed + shift + len(k)
        for p in ('own', 'maxprob'):
            m[f'{p}/{s}/AUROC'] = 0.5 + 0.1 * seed
            m[f'{p}/{s}/AURC'] = 0.01 * (seed + 1)
    for p in ('own', 'maxprob'):
        m[f'{p}/ood/OOD_AUROC_px'] = 0.6 + 0.05 * seed
        m[f'{p}/ood/OOD_FPR@95TPR_px'] = 0.9 - 0.1 * seed
    return m


def test_tables_give_mean_and_std_over_seeds_per_config():
    tool = load_script('tools/compare_heads.py')
    runs = {'ce_shapes_demo': {0: _run(0, 0.0), 1: _run(1, 0.0)},
            'edl_shapes_demo': {0: _run(0, 1.0), 1: _run(1, 1.0)}}
    md, data = tool.tables(runs, [0, 1])
    assert data['edl_shapes_demo']['shift/mIoU'] == [5.0, 15.0]
    row = next(line for line in md.splitlines() if line.startswith('| edl_shapes_demo | vacuity'))
    want = f'{np.mean([5.0, 15.0]):.2f} +- {np.std([5.0, 15.0], ddof=1):.2f}'
    assert want in row  # mIoU of the test set, the first column
    ood = [line for line in md.splitlines() if line.startswith('| ce_shapes_demo | max-prob')][-1]
    assert f'{0.625:.4f} +- {np.std([0.6, 0.65], ddof=1):.4f}' in ood
    assert md.count('| ce_shapes_demo |') == 3  # test, shift, ood


def test_a_missing_metric_is_nan_not_an_error():
    tool = load_script('tools/compare_heads.py')
    md, data = tool.tables({'dismax_shapes_demo': {0: {}}}, [0])
    assert np.isnan(data['dismax_shapes_demo']['test/mIoU']).all()
    assert 'nan' in md and '| dismax_shapes_demo | MMLES |' in md


@pytest.mark.parametrize('name', ['ce', 'edl', 'tedl', 'dismax', 'isomax'])
def test_every_default_config_has_its_own_score(name):
    tool = load_script('tools/compare_heads.py')
    assert any(c.endswith(f'/{name}_shapes_demo.py') for c in tool.DEFAULT_CONFIGS) and name in tool.OWN
