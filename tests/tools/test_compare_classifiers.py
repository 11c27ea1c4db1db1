"""tools/compare_classifiers.py: the fallback data's configs and the per-method table."""
import csv
import json
import os.path as osp
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS, METRICS

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO
from uqseg.cli import invoke

sys.path.insert(0, osp.join(REPO, 'tools'))
import compare_classifiers as cc  # noqa: E402


def test_the_fallback_data_runs_every_method_config(tmp_path):
    """Without the Debian package the comparison's configs read the embedded fallback (MNIST's
    5,000 digits, 4,000 / 1,000) with scikit-learn's digits as the OOD set."""
    js = str(tmp_path / 'cls.json')
    invoke(['make-demo-data', '--only', 'cls', '--source', str(tmp_path / 'none'), '--out', str(tmp_path / 'fm'),
            '--fallback-out', str(tmp_path / 'fb'), '--json', js])
    info = cc.read_data_info(sys.executable, js)
    assert info['source'] == 'fallback'
    for method in cc.HEADLINE + cc.EXTRA:
        if '+' in method:
            continue
        cfg = Config.fromfile(osp.join(REPO, cc.config_of(method, info, str(tmp_path / 'wd'))))
        assert cfg.model.head.num_classes == 10
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        train = DATASETS.build(cfg.train_dataloader.dataset)
        val = DATASETS.build(cfg.val_dataloader.dataset)
        test = DATASETS.build(cfg.test_dataloader.dataset)
        metric = METRICS.build(cfg.test_evaluator[0])
    assert len(train) + len(val) == 4000 and len(val) == 500
    sets = [test[i]['data_samples'].metainfo['set_name'] for i in (0, len(test) - 1)]
    assert sets == ['fashion_mnist', 'digits'] and len(test) == 1000 + 1797
    assert tuple(metric.ood_sets) == ('digits', )


def test_method_table_gives_mean_and_std_over_seeds_per_confidence(tmp_path):
    rows = []
    for seed, (acc, aurc, vac) in enumerate([(0.8, 0.05, 0.07), (0.9, 0.03, 0.05)]):
        rows.append({'model': f'edl_s{seed}', 'accuracy': acc, 'AURC[max-prob]': aurc, 'AURC[vacuity]': vac})
    path = tmp_path / 'r.csv'
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md, data = cc.method_table(cc.read_csv(str(path)), ['edl'], {'edl': [0, 1]})
    lines = md.splitlines()
    assert len(lines) == 4 and '| edl | 2 | max-prob |' in lines[2] and '| edl | 2 | vacuity |' in lines[3]
    assert f'{85.0:.2f} +- {np.std([80, 90], ddof=1):.2f}' in lines[2]
    assert data['edl/AURC[vacuity]'] == pytest.approx([0.07, 0.05])
    assert json.dumps(data)
