"""scikit-learn's 1,797 handwritten digits (8x8, values 0..16) as MNIST-like 28x28 uint8 images.

``sklearn.datasets.load_digits`` ships the UCI "Optical Recognition of Handwritten Digits" set with
scikit-learn (nothing is downloaded). Each 8x8 image is resized bilinearly (OpenCV ``INTER_LINEAR``)
to ``size - 2 * pad`` pixels and centred on a ``size x size`` black canvas, and its values are
scaled by 255 / 16 and rounded: ``img = round(resize(x) * 255 / 16)``. The default (``size=28,
pad=4``) puts the digit in a 20x20 box inside 28x28, as MNIST does; ``pad=0`` fills the canvas.
"""
from __future__ import annotations

import cv2
import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets.categories import MNIST_CATEGORITES
from mmpretrain.registry import DATASETS


def digits_as_mnist(images: np.ndarray, size: int = 28, pad: int = 4) -> np.ndarray:
    """``(N, 8, 8)`` values in 0..16 -> ``(N, size, size)`` uint8 in 0..255 (see the module docstring)."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f'digits_as_mnist: expected (N, H, W) images, got shape {images.shape}')
    inner = size - 2 * pad
    if pad < 0 or inner < 1:
        raise ValueError(f'digits_as_mnist: size={size}, pad={pad} leaves no room for the digit')
    if images.size and (images.min() < 0 or images.max() > 16):
        raise ValueError(f'digits_as_mnist: values must lie in 0..16, got {images.min()}..{images.max()}')
    out = np.zeros((len(images), size, size), dtype=np.uint8)
    for i, img in enumerate(images):
        big = cv2.resize(img, (inner, inner), interpolation=cv2.INTER_LINEAR)
        out[i, pad:pad + inner, pad:pad + inner] = np.clip(np.rint(big * (255.0 / 16.0)), 0, 255)
    return out


@DATASETS.register_module()
class SklearnDigits(BaseDataset):
    """scikit-learn's digits as 28x28 uint8 MNIST-like images (an out-of-distribution set for MNIST models).

    Args:
        set_name: stored in every data info as ``set_name`` (for ``PackInputs(meta_keys=(..., 'set_name'))``).
        size: the side of the output images (default 28).
        pad: the black border around the resized digit (default 4: a 20x20 digit, as in MNIST).
        **kwargs: :class:`mmpretrain.datasets.BaseDataset` arguments (``pipeline``, ``metainfo``, ``indices``,
            ``test_mode``, ...).
    """

    METAINFO = {'classes': MNIST_CATEGORITES}

    def __init__(self, set_name: str = 'digits', size: int = 28, pad: int = 4, **kwargs) -> None:
        self.set_name = set_name
        self.size = size
        self.pad = pad
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self) -> list[dict]:
        """One data info per digit: ``img`` (size, size) uint8, ``gt_label`` int64, ``set_name``."""
        from sklearn.datasets import load_digits  # scikit-learn's import takes ~1 s: only when the set is built

        digits = load_digits()
        imgs = digits_as_mnist(digits.images, self.size, self.pad)
        return [{'img': img, 'gt_label': np.array(label, dtype=np.int64), 'set_name': self.set_name}
                for img, label in zip(imgs, digits.target)]

    def extra_repr(self) -> list[str]:
        return [f'Images: \t{self.size}x{self.size} (pad {self.pad})', f'Set name: \t{self.set_name}']
