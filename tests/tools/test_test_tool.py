"""uqseg test: --show-dir draws every test image and says where; --out writes every map."""
import json
import os
import os.path as osp

import cv2
import pytest
from mmengine.runner import Runner

from tests.helpers.cfg import demo_cfg
from uqseg.cli import invoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def checkpoint(demo_root, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('train'))
    runner = Runner.from_cfg(demo_cfg(demo_root, work, max_iters=2, ckpt_interval=2))
    runner.train()
    return osp.join(work, 'iter_2.pth')


def test_show_dir_draws_every_test_image_and_says_where(demo_root, checkpoint, tmp_path, capsys):
    show = tmp_path / 'show'
    roots = [f'test_dataloader.dataset.datasets.{i}.data_root={osp.join(demo_root, s)}'
             for i, s in enumerate(('DUTS-TE', 'ECSSD', 'DTD'))]
    roots += [f'{split}_dataloader.dataset.data_root={osp.join(demo_root, "DUTS-TR")}' for split in ('train', 'val')]
    metrics = invoke(['test', 'configs/bce_sod_demo.py', checkpoint, '--work-dir', str(tmp_path / 'work'),
                      '--show-dir', str(show), '--out', str(tmp_path / 'maps'), '--cfg-options', *roots])
    images = sorted(os.listdir(show / 'vis_data' / 'vis_image'))
    n_test = sum(len(os.listdir(osp.join(demo_root, s, d))) for s, d in
                 (('DUTS-TE', 'DUTS-TE-Image'), ('ECSSD', 'images')))
    n_test += len(open(osp.join(demo_root, 'DTD', 'ood.txt')).read().split())
    assert len(images) == n_test  # every image, not one batch in 50
    first = cv2.imread(str(show / 'vis_data' / 'vis_image' / images[0]))
    assert first is not None and first.shape[1] == 2 * first.shape[0]  # ground truth beside prediction
    assert f'{n_test} pictures (ground truth and prediction) in {show / "vis_data" / "vis_image"}' \
        in capsys.readouterr().out
    assert json.load(open(tmp_path / 'work' / 'test_metrics.json')) == pytest.approx(metrics)
    maps = tmp_path / 'maps'
    assert sorted(os.listdir(maps)) == ['DTD', 'DUTS-TE', 'ECSSD']
    assert sum(len(os.listdir(maps / s)) for s in os.listdir(maps)) == n_test
