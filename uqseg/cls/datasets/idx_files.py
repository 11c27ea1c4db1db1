"""The IDX ("SN3", LeCun's MNIST) file format: writing uint8 arrays and reading a file's header.

Layout (http://yann.lecun.com/exdb/mnist/, section "FILE FORMATS"): a big-endian int32 magic
``0x0000TTDD`` (``TT = 0x08`` for unsigned bytes, ``DD`` = the number of dimensions), then one
big-endian int32 per dimension, then the data in C order. Images are ``(N, 28, 28)`` (magic 2051),
labels ``(N,)`` (magic 2049). mmpretrain's ``MNIST`` / ``FashionMNIST`` read these files
un-gzipped from their data root under the names in :data:`IDX_FILES`.
"""
from __future__ import annotations

import os
import struct

import numpy as np

#: The four files of an MNIST-layout data root (un-gzipped names), by role.
IDX_FILES = {
    'train_images': 'train-images-idx3-ubyte',
    'train_labels': 'train-labels-idx1-ubyte',
    'test_images': 't10k-images-idx3-ubyte',
    'test_labels': 't10k-labels-idx1-ubyte',
}
UBYTE = 0x08


def write_idx(path: str, array: np.ndarray) -> None:
    """Write a uint8 array (1 to 3 dimensions) as an IDX file (atomically: a temporary file, then rename)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f'{path}: IDX arrays are written as uint8, got dtype {array.dtype}')
    if not 1 <= array.ndim <= 3:
        raise ValueError(f'{path}: IDX arrays have 1 to 3 dimensions, got shape {array.shape}')
    tmp = f'{path}.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('>I', (UBYTE << 8) | array.ndim))
        f.write(struct.pack(f'>{array.ndim}I', *array.shape))
        f.write(np.ascontiguousarray(array).tobytes())
    os.replace(tmp, path)


def read_idx_header(path: str) -> tuple[int, ...]:
    """The shape an IDX file declares, checked against its size (uint8 files only).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a bad magic number, a type other than uint8, or a size that does not match the shape.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'IDX file {path!r} does not exist')
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(4)
        if len(head) < 4:
            raise ValueError(f'{path}: not an IDX file ({size} bytes, shorter than the 4-byte magic number)')
        magic, = struct.unpack('>I', head)
        kind, ndim = magic >> 8, magic & 0xFF
        if magic >> 16 or kind != UBYTE or not 1 <= ndim <= 3:
            raise ValueError(f'{path}: not a uint8 IDX file (magic number {magic:#010x}; expected 0x0000080D, '
                             'D = 1, 2 or 3 dimensions)')
        dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f'{path}: truncated IDX header ({size} bytes for {ndim} dimensions)')
    shape = struct.unpack(f'>{ndim}I', dims)
    expected = 4 * (ndim + 1) + int(np.prod(shape))
    if size != expected:
        raise ValueError(f'{path}: the header declares shape {shape} ({expected} bytes) but the file has {size} bytes')
    return shape
