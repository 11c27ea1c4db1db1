"""SODDataset and LoadSaliencyMask on the demo data: layouts, splits, set names, and each kind of bad
input named in its error."""
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.dataset import ConcatDataset
from mmseg.registry import DATASETS

import uqseg  # noqa: F401
from uqseg.seg.datasets import MaskFormatError, check_saliency_mask
from uqseg.seg.datasets.demo_data import make_demo_data

META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'sample_idx', 'set_name')
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadSaliencyMask'),
            dict(type='PackSegInputs', meta_keys=META_KEYS)]


def build(**kw):
    kw.setdefault('pipeline', PIPELINE)
    return DATASETS.build(dict(type='SODDataset', **kw))


@pytest.fixture()
def copy_of(demo_root, tmp_path):
    def _copy(name):
        dst = tmp_path / name
        shutil.copytree(osp.join(demo_root, name), dst)
        return str(dst)
    return _copy


def test_demo_generator_is_deterministic(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    make_demo_data(str(a), n_train=3, n_val=1, n_test=1, n_test2=1, n_ood=2, seed=3)
    make_demo_data(str(b), n_train=3, n_val=1, n_test=1, n_test2=1, n_ood=2, seed=3)
    files = sorted(str(p.relative_to(a)) for p in a.rglob('*') if p.is_file())
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob('*') if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    mask = cv2.imread(str(a / 'DUTS-TR/DUTS-TR-Mask/sun_demo_00000.png'), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (128, 128) and mask.dtype == np.uint8
    soft = ((mask > 0) & (mask < 255)).sum()
    assert soft > 0, 'mask edges should be soft (anti-aliased)'
    assert (mask == 255).sum() > soft, 'soft values only along the border'


def test_duts_layout_reads_disjoint_train_and_val_splits(demo_root):
    train = build(layout='DUTS-TR', data_root=osp.join(demo_root, 'DUTS-TR'), ann_file='train.txt')
    val = build(layout='DUTS-TR', set_name='DUTS-TR-val', data_root=osp.join(demo_root, 'DUTS-TR'),
                ann_file='val.txt')
    assert len(train) == 20 and len(val) == 4
    train_paths = {d['img_path'] for d in train.load_data_list()}
    val_paths = {d['img_path'] for d in val.load_data_list()}
    assert not train_paths & val_paths
    item = train[3]
    seg = item['data_samples'].gt_sem_seg.data
    assert set(seg.unique().tolist()) <= {0, 1} and seg.sum() > 0
    assert item['data_samples'].metainfo['sample_idx'] == 3
    assert item['data_samples'].metainfo['set_name'] == 'DUTS-TR'
    assert val[0]['data_samples'].metainfo['set_name'] == 'DUTS-TR-val'


def test_mask_is_binarised_at_128(demo_root):
    ds = build(layout='DUTS-TE', data_root=osp.join(demo_root, 'DUTS-TE'))
    info = ds.get_data_info(0)
    raw = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
    seg = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(seg, (raw >= 128).astype(np.uint8))


def test_ood_texture_set_is_all_background(demo_root):
    ds = build(layout='DTD', data_root=osp.join(demo_root, 'DTD'), ann_file='ood.txt')
    assert len(ds) == 5
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        assert sample.gt_sem_seg.data.sum() == 0
        assert tuple(sample.gt_sem_seg.data.shape[1:]) == tuple(sample.metainfo['ori_shape'])


def test_concat_of_test_sets_keeps_set_names(demo_root):
    sets = [build(layout='DUTS-TE', data_root=osp.join(demo_root, 'DUTS-TE')),
            build(layout='ECSSD', data_root=osp.join(demo_root, 'ECSSD'))]
    cat = ConcatDataset(sets)
    names = [cat[i]['data_samples'].metainfo['set_name'] for i in range(len(cat))]
    assert names == ['DUTS-TE'] * 6 + ['ECSSD'] * 4


def test_all_layouts_are_known_and_an_unknown_one_raises():
    from uqseg.seg.datasets import SOD_LAYOUTS
    for name in ('DUTS-TR', 'DUTS-TE', 'ECSSD', 'DUT-OMRON', 'HKU-IS', 'PASCAL-S', 'SOD', 'DTD'):
        assert name in SOD_LAYOUTS
    with pytest.raises(KeyError, match='unknown SOD layout'):
        build(layout='NOPE', data_root='x')


# ---------------------------------------------------------------- bad input

def test_image_without_mask_raises_naming_it(copy_of):
    root = copy_of('DUTS-TE')
    os.remove(osp.join(root, 'DUTS-TE-Mask', 'ILSVRC2012_demo_00002.png'))
    with pytest.raises(FileNotFoundError, match=r"have no mask .*ILSVRC2012_demo_00002"):
        build(layout='DUTS-TE', data_root=root)


def test_mask_without_image_raises_naming_it(copy_of):
    root = copy_of('DUTS-TE')
    os.remove(osp.join(root, 'DUTS-TE-Image', 'ILSVRC2012_demo_00001.jpg'))
    with pytest.raises(FileNotFoundError, match=r"have no image .*ILSVRC2012_demo_00001"):
        build(layout='DUTS-TE', data_root=root)


def test_split_naming_a_missing_image_raises(copy_of):
    root = copy_of('DUTS-TR')
    with open(osp.join(root, 'val.txt'), 'a') as f:
        f.write('not_there\n')
    with pytest.raises(FileNotFoundError, match=r"val.txt.*not_there"):
        build(layout='DUTS-TR', data_root=root, ann_file='val.txt')


def test_empty_split_raises(copy_of):
    root = copy_of('DUTS-TR')
    open(osp.join(root, 'empty.txt'), 'w').write('\n')
    with pytest.raises(ValueError, match=r"empty.txt.* lists no image"):
        build(layout='DUTS-TR', data_root=root, ann_file='empty.txt')


def test_empty_folder_raises(tmp_path):
    (tmp_path / 'DUTS-TE-Image').mkdir()
    (tmp_path / 'DUTS-TE-Mask').mkdir()
    with pytest.raises(ValueError, match='no image with suffix'):
        build(layout='DUTS-TE', data_root=str(tmp_path))


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match='DUTS-TE-Image'):
        build(layout='DUTS-TE', data_root=str(tmp_path))


@pytest.mark.parametrize('content', [b'', b'this is not a jpeg'])
def test_unreadable_image_raises_naming_it(copy_of, content):
    root = copy_of('DUTS-TE')
    path = osp.join(root, 'DUTS-TE-Image', 'ILSVRC2012_demo_00003.jpg')
    open(path, 'wb').write(content)
    ds = build(layout='DUTS-TE', data_root=root)
    idx = [d['img_path'] for d in ds.load_data_list()].index(path)
    with pytest.raises(Exception, match='ILSVRC2012_demo_00003.jpg'):
        ds[idx]


def _rewrite_mask(root, fn):
    path = osp.join(root, 'DUTS-TE-Mask', 'ILSVRC2012_demo_00000.png')
    mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, fn(mask))
    return build(layout='DUTS-TE', data_root=root)


def test_mask_that_is_a_01_map_raises(copy_of):
    ds = _rewrite_mask(copy_of('DUTS-TE'), lambda m: (m >= 128).astype(np.uint8))
    with pytest.raises(MaskFormatError, match=r'ILSVRC2012_demo_00000.png.*values are in \[0, 1\]'):
        ds[0]


def test_mask_that_is_a_label_map_raises(copy_of):
    def labels(m):
        out = np.zeros_like(m)
        out[:, :40], out[:, 40:80], out[:, 80:120] = 1, 2, 3
        out[:4] = 255  # an ignore border, as in VOC-style label maps
        return out
    ds = _rewrite_mask(copy_of('DUTS-TE'), labels)
    with pytest.raises(MaskFormatError, match=r'ILSVRC2012_demo_00000.png.*multi-class label map'):
        ds[0]


def test_mask_with_colour_channels_raises(copy_of):
    def colour(m):
        out = np.stack([m, np.zeros_like(m), m], -1)
        return out
    ds = _rewrite_mask(copy_of('DUTS-TE'), colour)
    with pytest.raises(MaskFormatError, match=r'ILSVRC2012_demo_00000.png.*channels'):
        ds[0]


def test_mask_of_other_size_raises(copy_of):
    ds = _rewrite_mask(copy_of('DUTS-TE'), lambda m: cv2.resize(m, (100, 90)))
    with pytest.raises(MaskFormatError, match=r'ILSVRC2012_demo_00000.png: mask size 100x90 .* differs .*128x128'):
        ds[0]


def test_valid_masks_pass_the_check():
    yy, xx = np.mgrid[:64, :64]
    soft = np.clip((20 - np.hypot(yy - 32, xx - 32)) * 64 + 128, 0, 255).astype(np.uint8)
    assert check_saliency_mask(soft, 'soft.png') is soft
    # a thin anti-aliased ring: most non-zero pixels are soft edge values, on both sides of 128
    big = np.zeros((256, 256), np.uint8)
    cv2.circle(big, (128, 128), 40, 255, 2)
    ring = cv2.resize(big, (64, 64), interpolation=cv2.INTER_AREA)
    assert (ring[ring > 0] < 128).mean() > 0.5
    assert check_saliency_mask(ring, 'ring.png') is ring
    empty = np.zeros((8, 8), np.uint8)
    assert check_saliency_mask(empty, 'empty.png') is empty
    grey3 = np.repeat(soft[..., None], 3, axis=2)
    np.testing.assert_array_equal(check_saliency_mask(grey3, 'grey3.png'), soft)
    with pytest.raises(MaskFormatError, match='dtype uint16'):
        check_saliency_mask(soft.astype(np.uint16), 'deep.png')
