"""The multiclass shapes demo: generator (determinism, layout, labels, splits), ShapesDataset read
through mmseg, the base dataset config and uqseg make-demo-data's sod / shapes part."""
import functools
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO
from uqseg.cli import invoke
from uqseg.seg.datasets import OOD_INDEX, ShapesDataset, make_shapes_demo
from uqseg.seg.datasets.demo_data import make_demo_data
from uqseg.seg.datasets.shapes_demo import SPLITS, _majority
from uqseg.seg.datasets.stamped import STAMP, write_stamped

ID_SPLITS = ('train', 'val', 'test', 'shift')
META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'sample_idx', 'set_name')
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs', meta_keys=META_KEYS)]


def labels(root, split):
    files = sorted(os.listdir(osp.join(root, 'ann_dir', split)))
    return [cv2.imread(osp.join(root, 'ann_dir', split, f), cv2.IMREAD_UNCHANGED) for f in files]


def images(root, split):
    files = sorted(os.listdir(osp.join(root, 'img_dir', split)))
    return [cv2.imread(osp.join(root, 'img_dir', split, f), cv2.IMREAD_UNCHANGED) for f in files]


def build(root, split, **kw):
    return DATASETS.build(dict(type='ShapesDataset', data_root=root, pipeline=kw.pop('pipeline', PIPELINE),
                               data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
                               **kw))


# ---------------------------------------------------------------- generator

def test_generator_is_deterministic(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    for root, seed in ((a, 3), (b, 3), (c, 4)):
        make_shapes_demo(str(root), n_train=6, n_val=6, n_test=6, n_shift=6, n_ood=6, seed=seed)
    files = sorted(str(p.relative_to(a)) for p in a.rglob('*') if p.is_file())
    assert len(files) == 2 * 5 * 6
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob('*') if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert all((a / f).read_bytes() != (c / f).read_bytes() for f in files if f.startswith('img_dir')), \
        'another seed gives other images'


def test_split_streams_are_independent(tmp_path):
    make_shapes_demo(str(tmp_path / 'a'), n_train=2, n_val=3, n_test=3, n_shift=3, n_ood=3, seed=5)
    make_shapes_demo(str(tmp_path / 'b'), n_train=7, n_val=3, n_test=3, n_shift=3, n_ood=3, seed=5)
    for split in ('val', 'test', 'shift', 'ood'):
        for f in os.listdir(tmp_path / 'a' / 'img_dir' / split):
            for d in ('img_dir', 'ann_dir'):
                assert (tmp_path / 'a' / d / split / f).read_bytes() == (tmp_path / 'b' / d / split / f).read_bytes()


def test_layout_counts_and_formats(tmp_path):
    counts = dict(train=6, val=5, test=4, shift=3, ood=2)
    out = make_shapes_demo(str(tmp_path), n_train=6, n_val=5, n_test=4, n_shift=3, n_ood=2, seed=0)
    assert out == {s: osp.join(str(tmp_path), 'img_dir', s) for s in SPLITS}
    assert sorted(os.listdir(tmp_path)) == ['ann_dir', 'img_dir']
    for d in ('img_dir', 'ann_dir'):
        assert sorted(os.listdir(tmp_path / d)) == sorted(SPLITS)
    for split, n in counts.items():
        names = sorted(os.listdir(tmp_path / 'img_dir' / split))
        assert names == [f'{split}_{i:05d}.png' for i in range(n)]
        assert sorted(os.listdir(tmp_path / 'ann_dir' / split)) == names
        for img, lab in zip(images(str(tmp_path), split), labels(str(tmp_path), split)):
            assert img.shape == (64, 64, 3) and img.dtype == np.uint8
            assert lab.shape == (64, 64) and lab.dtype == np.uint8
            assert img.std() > 10, 'a textured, cluttered image, not a flat one'


def test_size_argument(tmp_path):
    make_shapes_demo(str(tmp_path), n_train=1, n_val=0, n_test=0, n_shift=0, n_ood=1, size=32)
    assert images(str(tmp_path), 'train')[0].shape == (32, 32, 3)
    assert labels(str(tmp_path), 'ood')[0].shape == (32, 32)


def test_id_splits_hold_only_the_four_classes_and_each_of_them(shapes_root):
    for split in ID_SPLITS:
        values = set(np.unique(np.stack(labels(shapes_root, split))).tolist())
        assert values == {0, 1, 2, 3}, split  # every class in every split, nothing else
    for lab in labels(shapes_root, 'train'):
        assert (lab > 0).any(), 'every image holds an object'
        assert (lab == 0).mean() > 0.4, 'objects on a background'


def test_ood_split_has_unseen_objects_labelled_254_and_nothing_else_new(shapes_root):
    assert OOD_INDEX == 254
    for lab in labels(shapes_root, 'ood'):
        values = set(np.unique(lab).tolist())
        assert OOD_INDEX in values, 'every ood image holds an unseen object'
        assert values <= {0, 1, 2, 3, OOD_INDEX}
        assert values & {1, 2, 3}, 'and in-distribution objects too'
        assert (lab == OOD_INDEX).sum() >= 10
    for split in ID_SPLITS:
        assert not any((lab >= 4).any() for lab in labels(shapes_root, split)), split
    assert not any((lab == 255).any() for s in SPLITS for lab in labels(shapes_root, s)), '255 is ignore_index'


def test_labels_are_the_majority_of_the_sub_pixels():
    big = np.zeros((8, 8), np.uint8)  # 2x2 pixels of 4x4 sub-pixels
    big[:4, :3] = 1        # pixel (0, 0): 12 of 16 are 1
    big[:2, 4:] = 2        # pixel (0, 1): 8 of 16 are 2, 8 background: a tie goes to the lower label
    big[4:, :] = 3
    big[4:7, 4:] = OOD_INDEX  # pixel (1, 1): 12 of 16 OOD, 4 of 16 class 3
    big[4:5, :2] = 0       # pixel (1, 0): 14 of 16 class 3
    out = _majority(big, 2)
    np.testing.assert_array_equal(out, np.array([[1, 0], [3, OOD_INDEX]], np.uint8))


def test_shift_split_has_a_colour_cast_and_more_noise(shapes_root):
    def red_minus_blue(split):
        return np.mean([im[..., 2].astype(float).mean() - im[..., 0].astype(float).mean()
                        for im in images(shapes_root, split)])

    def high_freq(split):
        return np.mean([cv2.Laplacian(im.astype(np.float32).mean(-1), cv2.CV_32F).std()
                        for im in images(shapes_root, split)])

    assert red_minus_blue('shift') > red_minus_blue('test') + 8
    assert high_freq('shift') > 1.25 * high_freq('test')


# ---------------------------------------------------------------- dataset

def test_dataset_reads_labels_as_they_are_with_set_name_and_sample_idx(shapes_root):
    ds = build(shapes_root, 'ood')
    assert isinstance(ds, ShapesDataset) and len(ds) == 6
    assert ds.metainfo['classes'] == ('background', 'disk', 'box', 'triangle')
    assert len(ds.metainfo['palette']) == 4
    assert ds.set_name == 'ood'  # default: the split folder's name
    for idx in (0, 4):
        item = ds[idx]
        sample = item['data_samples']
        raw = cv2.imread(ds.get_data_info(idx)['seg_map_path'], cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), raw)
        assert OOD_INDEX in sample.gt_sem_seg.data.unique().tolist()
        assert sample.metainfo['set_name'] == 'ood'
        assert sample.metainfo['sample_idx'] == idx
        assert sample.metainfo['img_path'].endswith(f'img_dir/ood/ood_{idx:05d}.png')
        assert tuple(item['inputs'].shape) == (3, 64, 64)
    named = build(shapes_root, 'val', set_name='shapes-val')
    assert named.get_data_info(2)['set_name'] == 'shapes-val'
    assert named[2]['data_samples'].metainfo['set_name'] == 'shapes-val'


def test_missing_split_folder_is_named(shapes_root):
    with pytest.raises(FileNotFoundError, match=r"nope: image folder .*img_dir/nope"):
        build(shapes_root, 'nope')


def test_base_config_builds_the_splits_with_their_set_names(shapes_root):
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets', 'shapes_demo.py'))
    assert 'val_evaluator' not in cfg and 'test_evaluator' not in cfg
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler' and cfg.train_dataloader.batch_size == 8
    for meta in (cfg.train_pipeline[-1], cfg.test_pipeline[-1]):
        assert {'sample_idx', 'set_name'} <= set(meta['meta_keys'])

    def at(ds):
        return dict(ds, data_root=shapes_root)

    train = DATASETS.build(at(cfg.train_dataloader.dataset))
    assert train.set_name == 'train' and len(train) == 6
    assert tuple(train[0]['inputs'].shape) == (3, 64, 64)
    val = DATASETS.build(at(cfg.val_dataloader.dataset))
    assert val[0]['data_samples'].metainfo['set_name'] == 'val'
    test_cfg = cfg.test_dataloader.dataset
    test = DATASETS.build(dict(test_cfg, datasets=[at(d) for d in test_cfg.datasets]))
    names = [test[i]['data_samples'].metainfo['set_name'] for i in range(len(test))]
    assert names == ['test'] * 6 + ['shift'] * 6 + ['ood'] * 6


# ---------------------------------------------------------------- uqseg make-demo-data

def test_each_demo_is_written_once_with_its_own_stamp(tmp_path):
    small_shapes = functools.partial(make_shapes_demo, n_train=2, n_val=1, n_test=1, n_shift=1, n_ood=1)
    small_sod = functools.partial(make_demo_data, n_train=2, n_val=1, n_test=1, n_test2=1, n_ood=1)
    sod, shapes = str(tmp_path / 'sod'), str(tmp_path / 'shapes')

    assert write_stamped(shapes, small_shapes) >= 0
    assert open(osp.join(shapes, STAMP)).read() == 'seed=0\n'
    assert len(os.listdir(osp.join(shapes, 'img_dir', 'train'))) == 2
    first = open(osp.join(shapes, 'img_dir', 'train', 'train_00000.png'), 'rb').read()

    os.remove(osp.join(shapes, 'img_dir', 'val', 'val_00000.png'))  # complete: left alone
    assert write_stamped(shapes, small_shapes) is None
    assert not osp.exists(osp.join(shapes, 'img_dir', 'val', 'val_00000.png'))

    assert write_stamped(sod, small_sod) >= 0
    assert sorted(os.listdir(sod)) == sorted([STAMP, 'DTD', 'DUTS-TE', 'DUTS-TR', 'ECSSD'])
    with open(osp.join(sod, 'stale.txt'), 'w') as f:
        f.write('left by an older version')
    assert write_stamped(sod, small_sod, force=True) >= 0  # rewritten from an empty folder
    assert not osp.exists(osp.join(sod, 'stale.txt'))

    assert write_stamped(shapes, small_shapes, force=True) >= 0
    assert osp.exists(osp.join(shapes, 'img_dir', 'val', 'val_00000.png'))
    assert open(osp.join(shapes, 'img_dir', 'train', 'train_00000.png'), 'rb').read() == first

    os.remove(osp.join(shapes, STAMP))  # incomplete: rewritten without force
    assert write_stamped(shapes, small_shapes, seed=2) >= 0
    assert open(osp.join(shapes, STAMP)).read() == 'seed=2\n'
    assert open(osp.join(shapes, 'img_dir', 'train', 'train_00000.png'), 'rb').read() != first


def test_the_command_writes_the_shapes_demo_where_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default paths are relative to the current folder
    result = invoke(['make-demo-data', '--only', 'shapes'])
    root = osp.join('data', 'demo_shapes')
    assert result == {'shapes': root} and not osp.exists(osp.join('data', 'demo'))
    assert f'shapes demo data written to {root}' in capsys.readouterr().out
    expected = tmp_path / 'expected'
    make_shapes_demo(str(expected))  # the command's data is the generator's, defaults and seed 0
    for split in SPLITS:
        names = sorted(os.listdir(expected / 'ann_dir' / split))
        assert sorted(os.listdir(osp.join(root, 'ann_dir', split))) == names
        for name in names[:3]:
            assert open(osp.join(root, 'ann_dir', split, name), 'rb').read() == \
                (expected / 'ann_dir' / split / name).read_bytes()
    assert invoke(['make-demo-data', '--only', 'shapes', '--shapes-root', root]) == {'shapes': root}
    assert 'already in' in capsys.readouterr().out
