"""Fashion-MNIST with a held-out validation split taken from the training files.

mmpretrain's ``FashionMNIST`` has two splits, the 60,000 training and the 10,000 test images. Model
selection (and temperature fitting) must not see the test images, so ``split='val'`` takes
``num_val`` training images and ``split='train'`` the rest, by one seeded permutation of the
training indices (``numpy.random.default_rng(seed).permutation(n)``: ``val`` = its first
``num_val`` entries, ``train`` = the others, optionally only the first ``num_train`` of them);
``split='test'`` is the test files. Each split keeps the files' order. The IDX files are read
un-gzipped from ``data_root`` with mmpretrain's own readers (``uqseg make-demo-data --only cls`` writes
them); nothing is downloaded.
"""
from __future__ import annotations

import os.path as osp
import warnings
from typing import Optional

import numpy as np
from mmengine.fileio import join_path
from mmpretrain.datasets import BaseDataset, FashionMNIST
from mmpretrain.datasets.mnist import read_image_file, read_label_file
from mmpretrain.registry import DATASETS

from .idx_files import IDX_FILES, read_idx_header

SPLITS = ('train', 'val', 'test')


@DATASETS.register_module()
class FashionMNISTSplit(FashionMNIST):
    """Fashion-MNIST (or any data root in the MNIST IDX layout) with ``split='train' | 'val' | 'test'``.

    Args:
        data_root: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` (``train``,
            ``val``) and ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (``test``), un-gzipped.
        split: ``'train'``, ``'val'`` (disjoint parts of the training files) or ``'test'`` (the test files;
            ``test_mode`` is then set to True, as mmpretrain reads the test files in test mode).
        num_val: the number of training images held out as ``val`` (default 5000; at least 1 and fewer
            than the training images).
        num_train: if given, ``train`` is only the first ``num_train`` images of its part of the
            permutation (a seeded subset, e.g. for a quick CPU run); ``val`` is unchanged.
        seed: the seed of the permutation; ``train`` and ``val`` of the same ``seed`` and ``num_val``
            are disjoint.
        set_name: stored in every data info as ``set_name`` (for ``PackInputs(meta_keys=(..., 'set_name'))``).
        **kwargs: :class:`mmpretrain.datasets.BaseDataset` arguments (``pipeline``, ``metainfo``,
            ``indices``, ``test_mode``, ...). ``download`` is refused: the files are prepared locally.
    """

    def __init__(self, data_root: str = '', split: str = 'train', num_val: int = 5000,
                 num_train: Optional[int] = None, seed: int = 0, set_name: str = 'fashion_mnist',
                 data_prefix: str = '', test_mode: bool = False, download: bool = False, **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'{type(self).__name__}: split must be one of {SPLITS}, got {split!r}')
        if download:
            raise ValueError(f'{type(self).__name__}: download=True is not supported; '
                             'write the files with uqseg make-demo-data --only cls')
        if not data_root and not data_prefix:
            raise ValueError(f'{type(self).__name__}: set data_root to the folder of the IDX files')
        if isinstance(num_val, bool) or not isinstance(num_val, int) or num_val < 1:
            raise ValueError(f'{type(self).__name__}: num_val must be a positive int, got {num_val!r}')
        if num_train is not None and (isinstance(num_train, bool) or not isinstance(num_train, int)
                                      or num_train < 1):
            raise ValueError(f'{type(self).__name__}: num_train must be a positive int or None, got {num_train!r}')
        self.split = split
        self.num_val = num_val
        self.num_train = num_train
        self.seed = seed
        self.set_name = set_name
        self.download = False
        # mmpretrain's MNIST.__init__ only admits 'train' / 'test' and warns on train + test_mode (which a
        # val loader sets): its remaining work, the BaseDataset call, is done here directly.
        BaseDataset.__init__(self, ann_file='', data_root=data_root, data_prefix=dict(root=data_prefix),
                             test_mode=test_mode or split == 'test', **kwargs)

    def _files(self) -> tuple[str, str]:
        part = 'test' if self.split == 'test' else 'train'
        root = self.data_prefix['root']
        return join_path(root, IDX_FILES[f'{part}_images']), join_path(root, IDX_FILES[f'{part}_labels'])

    def _check_exists(self) -> bool:
        return all(osp.isfile(p) for p in self._files())

    def load_data_list(self) -> list[dict]:
        """The split's images ((28, 28) uint8) and labels (int64), each with ``set_name``."""
        img_file, label_file = self._files()
        missing = [p for p in (img_file, label_file) if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(f'{type(self).__name__}(split={self.split!r}): missing {missing} in data_root '
                                    f'{self.data_prefix["root"]!r} (uqseg make-demo-data --only cls writes them)')
        img_shape, label_shape = read_idx_header(img_file), read_idx_header(label_file)
        if len(img_shape) != 3 or len(label_shape) != 1:
            raise ValueError(f'{img_file} / {label_file}: expected (N, H, W) images and (N,) labels, '
                             f'got shapes {img_shape} and {label_shape}')
        if img_shape[0] != label_shape[0]:
            raise ValueError(f'{img_file} has {img_shape[0]} images but {label_file} has {label_shape[0]} labels')
        with warnings.catch_warnings():  # mmpretrain's reader wraps a read-only buffer in a tensor; it is not written
            warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
            imgs = read_image_file(img_file).numpy()
            labels = read_label_file(label_file).numpy()
        num_classes = len(self.metainfo.get('classes') or ()) or 10
        if labels.size and labels.max() >= num_classes:
            row = int(np.argmax(labels >= num_classes))
            raise ValueError(f'{label_file}: label {labels[row]} at index {row} is outside [0, {num_classes})')
        keep = self.split_indices(len(labels))
        return [{'img': imgs[i], 'gt_label': np.array(labels[i], dtype=np.int64), 'set_name': self.set_name}
                for i in keep]

    def split_indices(self, n: int) -> np.ndarray:
        """Indices (sorted) into the ``n`` images of the split's files that form this split."""
        if self.split == 'test':
            return np.arange(n)
        if self.num_val >= n:
            raise ValueError(f'{type(self).__name__}: num_val={self.num_val} leaves no training image '
                             f'out of the {n} in {self._files()[0]}')
        perm = np.random.default_rng(self.seed).permutation(n)
        part = perm[:self.num_val] if self.split == 'val' else perm[self.num_val:]
        if self.split == 'train' and self.num_train is not None:
            if self.num_train > len(part):
                raise ValueError(f'{type(self).__name__}: num_train={self.num_train} exceeds the {len(part)} '
                                 f'training images left after num_val={self.num_val}')
            part = part[:self.num_train]
        return np.sort(part)

    def extra_repr(self) -> list[str]:
        return [f"Prefix of data: \t{self.data_prefix['root']}", f'Split: \t{self.split}',
                f'Set name: \t{self.set_name}']
