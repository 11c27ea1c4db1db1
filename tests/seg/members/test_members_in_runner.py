"""The components of several members through mmengine's Runner on the shapes demo: an ensemble
config tested by ``uqseg test`` without a checkpoint (metrics and hooks by the name
'mutual-information', --out-scores), MC dropout under ``runner.test()``, TTA views of MC dropout
(``uqseg test --tta``), and the one-line error of a missing checkpoint."""
import textwrap

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from tests.helpers.cfg import REPO, shapes_cfg
from tests.seg.members.common import build, model_cfg, save
from uqseg.cli import invoke, main

pytestmark = pytest.mark.usefixtures('one_thread')
SETS = ('test', 'shift', 'ood')
MI_METRICS = """test_evaluator = _base_.test_evaluator + [
    dict(type='PixelUncertaintyMetric', score='mutual-information', per_image=False, ignore_index=(255, 254),
         prefix='mi'),
    dict(type='OODDetectionMetric', ood_sets=['ood'], ood_index=254, score='mutual-information', prefix='mi')]
"""


def _roots(root, n=3):
    """The test sets on the small shapes copy, ``n`` images each."""
    return [f'test_dataloader.dataset.datasets.{i}.{key}' for i in range(len(SETS))
            for key in (f'data_root={root}', f'indices={n}')]


def _write(path, text, more=''):
    path.write_text(textwrap.dedent(text) + more)
    return str(path)


def test_uqseg_test_an_ensemble_config_scores_mutual_information_everywhere(shapes_root, tmp_path):
    ckpts = [save(build(model_cfg(), seed), tmp_path / f'm{seed}.pth') for seed in (0, 1)]
    config = _write(tmp_path / 'ensemble.py', f"""\
        _base_ = ['{REPO}/configs/ce_shapes_demo.py']
        model = dict(_delete_=True, type='EnsembleSegmentor',
                     members=[dict(config='ce_shapes_demo', checkpoint=c) for c in {ckpts!r}])
        custom_hooks = [dict(type='UncertaintyMapHook', num_samples=1, scores=['mutual-information', 'entropy'],
                             ignore_index=(255, 254),
                             out_dir='{tmp_path / 'figures'}')]
        """, MI_METRICS)
    out = tmp_path / 'maps'
    metrics = invoke(['test', config, '--work-dir', str(tmp_path / 'w'), '--out', str(out),
                      '--out-scores', 'mutual-information', 'disagreement', 'max-prob',
                      '--cfg-options', *_roots(shapes_root)])
    own = {'mi/' + k[4:]: v for k, v in metrics.items() if k.startswith('own/')}
    assert own and own == {k: v for k, v in metrics.items() if k.startswith('mi/')}  # the own score is the MI
    assert {'test/mIoU', 'mi/ood/OOD_AUROC_px', 'mi/test/AURC'} <= set(metrics)
    for name in SETS:
        files = sorted(p.name for p in (out / name).iterdir())
        assert any(f.endswith('_mutual-information.npy') for f in files)
        assert any(f.endswith('_disagreement.npy') for f in files) and any(f.endswith('.png') for f in files)
        mi = np.load(out / name / next(f for f in files if f.endswith('_mutual-information.npy')))
        assert mi.shape == (64, 64) and mi.dtype == np.float32 and mi.min() >= 0 and mi.max() > 0
        assert len(list((tmp_path / 'figures' / name).glob('*.png'))) == 1


def test_mc_dropout_through_the_runner(shapes_root, tmp_path):
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'w'), config='configs/mc_dropout_shapes_demo.py')
    cfg.model.passes = 2
    cfg.test_dataloader.dataset.datasets = cfg.test_dataloader.dataset.datasets[2:]  # the ood set
    cfg.test_dataloader.dataset.datasets[0].indices = 3
    metrics = Runner.from_cfg(cfg).test()
    assert 0 < metrics['own/ood/OOD_AUROC_px'] < 1
    assert metrics['own/ood/OOD_AUROC_px'] != metrics['maxprob/ood/OOD_AUROC_px']


def test_uqseg_test_tta_views_of_mc_dropout(shapes_root, tmp_path):
    ckpt = save(build(model_cfg()), tmp_path / 'plain.pth')
    config = _write(tmp_path / 'mc_tta.py', f"""\
        _base_ = ['{REPO}/configs/mc_dropout_shapes_demo.py']
        model = dict(passes=2)
        tta_model = dict(type='SegTTAModel')
        tta_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='TestTimeAug', transforms=[
                [dict(type='RandomFlip', prob=0., direction='horizontal'),
                 dict(type='RandomFlip', prob=1., direction='horizontal')],
                [dict(type='LoadAnnotations')], [dict(type='PackSegInputs', meta_keys=_base_.meta_keys)]])]
        test_dataloader = dict(batch_size=2)
        """)
    metrics = invoke(['test', config, ckpt, '--tta', '--work-dir', str(tmp_path / 'w'),
                      '--cfg-options', *_roots(shapes_root, 2)])
    assert 0 < metrics['own/ood/OOD_AUROC_px'] < 1 and 0 < metrics['own/test/AUROC'] < 1


def test_a_missing_checkpoint_of_a_single_model_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(['test', 'ce_shapes_demo'])
    assert e.value.code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith('warning:')]
    assert err[0] == ("uqseg test: error: ce_shapes_demo: CHECKPOINT is missing; only an ensemble config "
                      "(model.type one of ('EnsembleSegmentor', 'EnsembleClassifier')) is tested without one")
    assert not any('Traceback' in line for line in err)
    torch.set_num_threads(1)
