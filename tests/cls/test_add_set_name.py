"""AddSetName (uqseg.cls.transforms): tags every sample with its set's name, which
``PackInputs(meta_keys=(..., 'set_name'))`` carries into the data sample's metainfo and
SelectivePredictionMetric reads to tell OOD samples from in-distribution ones; shown on a
ConcatDataset of mmpretrain datasets (FashionMNISTSplit, which stores its own set_name, and
mmpretrain's MNIST, which stores none, with AddSetName in its pipeline). IDX files are written here
with struct, independently of the code under test."""
import struct

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmpretrain.registry import DATASETS, METRICS, TRANSFORMS
from mmpretrain.structures import DataSample

import uqseg.cls  # noqa: F401  (registers the transform, datasets and metric)
from uqseg.cls.transforms import AddSetName

META_KEYS = ('sample_idx', 'img_shape', 'set_name')
N_ID, N_OOD = 6, 4


def _build(set_name):
    return TRANSFORMS.build(dict(type='AddSetName', set_name=set_name))


def _write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, 'wb') as f:
        f.write(struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + struct.pack(f'>{array.ndim}i', *array.shape))
        f.write(array.tobytes())


def _idx_root(path, n_test, seed):
    path.mkdir()
    rng = np.random.default_rng(seed)
    _write_idx(path / 'train-images-idx3-ubyte', rng.integers(0, 256, (8, 28, 28)))
    _write_idx(path / 'train-labels-idx1-ubyte', np.arange(8) % 10)
    _write_idx(path / 't10k-images-idx3-ubyte', rng.integers(0, 256, (n_test, 28, 28)))
    _write_idx(path / 't10k-labels-idx1-ubyte', (np.arange(n_test) * 3) % 10)
    return str(path)


def test_sets_the_key_and_pack_inputs_carries_it():
    t = _build('cifar100')
    assert isinstance(t, AddSetName) and TRANSFORMS.get('AddSetName') is AddSetName
    img = np.zeros((4, 4, 3), np.uint8)
    out = t(dict(img=img, gt_label=3))
    assert out['set_name'] == 'cifar100' and out['gt_label'] == 3 and out['img'] is img
    assert t(dict(img=img, set_name='fashion_mnist'))['set_name'] == 'cifar100'  # replaces a dataset's own
    pipeline = Compose([t, TRANSFORMS.build(dict(type='PackInputs', meta_keys=META_KEYS))])
    packed = pipeline(dict(img=img, gt_label=3, sample_idx=7, img_shape=(4, 4)))
    sample = packed['data_samples']
    assert isinstance(sample, DataSample)
    assert sample.set_name == 'cifar100' and sample.metainfo['set_name'] == 'cifar100'
    assert 'set_name' in sample.metainfo_keys() and 'set_name' not in sample.keys()  # metainfo, not data
    assert sample.metainfo['sample_idx'] == 7 and int(sample.gt_label) == 3
    # without 'set_name' among the meta keys it is not packed
    plain = Compose([t, TRANSFORMS.build(dict(type='PackInputs', meta_keys=('sample_idx', )))])
    assert 'set_name' not in plain(dict(img=img, gt_label=3, sample_idx=7))['data_samples'].metainfo
    assert repr(t) == "AddSetName(set_name='cifar100')"


@pytest.mark.parametrize('bad', ['', None, 3, b'mnist', ['mnist'], ('mnist', )])
def test_a_bad_set_name_is_refused(bad):
    with pytest.raises(ValueError, match=r'AddSetName: set_name must be a non-empty string, got '):
        _build(bad)


def test_a_set_name_is_required():
    with pytest.raises(TypeError, match='set_name'):
        TRANSFORMS.build(dict(type='AddSetName'))


@pytest.fixture
def concat(tmp_path):
    id_root, ood_root = _idx_root(tmp_path / 'fmnist_like', N_ID, 0), _idx_root(tmp_path / 'mnist_like', N_OOD, 1)
    pack = dict(type='PackInputs', meta_keys=META_KEYS)
    return DATASETS.build(dict(type='ConcatDataset', ignore_keys=['classes'], datasets=[
        dict(type='FashionMNISTSplit', data_root=id_root, split='test', pipeline=[pack]),
        # mmpretrain 1.2.0's MNIST reads the test files by test_mode, not by split
        dict(type='MNIST', data_root=ood_root, split='test', test_mode=True, download=False,
             pipeline=[dict(type='AddSetName', set_name='mnist'), pack])]))


def test_a_concat_dataset_with_add_set_name_in_one_pipeline(concat):
    assert len(concat) == N_ID + N_OOD
    names = [concat[i]['data_samples'].set_name for i in range(len(concat))]
    assert names == ['fashion_mnist'] * N_ID + ['mnist'] * N_OOD
    # the data infos of mmpretrain's MNIST hold no set_name: the pipeline put it there
    assert 'set_name' not in concat.datasets[1].get_data_info(0)
    assert concat.datasets[0].get_data_info(0)['set_name'] == 'fashion_mnist'
    labels = [int(concat[i]['data_samples'].gt_label) for i in range(len(concat))]
    assert labels == [(i * 3) % 10 for i in range(N_ID)] + [(i * 3) % 10 for i in range(N_OOD)]


def test_the_set_name_reaches_the_selective_metric(concat):
    """Confident predictions on the in-distribution set, uniform ones on the AddSetName set: OOD
    detection is perfect (AUROC 1, FPR95 0) only if the metric told the sets apart by set_name."""
    metric = METRICS.build(dict(type='SelectivePredictionMetric', confidences=('max-prob', ), ood_sets=('mnist', )))
    samples = []
    for i in range(len(concat)):
        sample = concat[i]['data_samples']
        if sample.set_name == 'mnist':
            score = torch.full((10, ), 0.1)
        else:
            score = torch.full((10, ), 0.05 / 9)
            score[int(sample.gt_label)] = 0.95
        samples.append(sample.set_pred_score(score).set_pred_label(int(score.argmax())))
    metric.process(None, samples)
    result = metric.evaluate(len(samples))
    assert result['selective/accuracy'] == pytest.approx(1.0)
    assert result['selective/OOD-AUROC[max-prob]'] == pytest.approx(1.0)
    assert result['selective/OOD-FPR95[max-prob]'] == pytest.approx(0.0)
    assert result['selective/NLL'] == pytest.approx(-np.log(0.95), rel=1e-5)  # in-distribution samples only
