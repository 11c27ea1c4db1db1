"""Loading of 0-255 saliency masks as 0/1 labels, with checks that catch the wrong kind of mask."""
from __future__ import annotations

from typing import Optional

import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


class MaskFormatError(ValueError):
    """A mask file that is not an 8-bit 0-255 saliency mask of its image's size."""


def check_saliency_mask(mask: np.ndarray, path: str) -> np.ndarray:
    """Return ``mask`` as a 2-D uint8 array, or raise :class:`MaskFormatError` naming ``path``.

    Rejected, because thresholding at 128 would silently turn them into wrong labels:

    * more than one distinct channel (a colour or palette-coloured label image);
    * a non-8-bit image (16-bit label maps);
    * a 0/1 map or class-index map: non-zero values whose maximum is below 128 (all background
      after thresholding);
    * a multi-class label map (class indices, perhaps with 255 as ignore): most non-zero pixels
      below 128 and no grey level in [128, 255). Anti-aliased edges of a saliency mask fall on
      both sides of 128, so soft masks pass even for thin objects whose edges dominate.

    An all-zero mask is valid (an image without salient object).
    """
    if mask is None:
        raise MaskFormatError(f'{path}: mask file could not be decoded (corrupt or not an image)')
    if mask.dtype != np.uint8:
        raise MaskFormatError(
            f'{path}: mask has dtype {mask.dtype}; expected an 8-bit grey image with values 0-255')
    if mask.ndim == 3:
        channels = mask[..., :3] if mask.shape[2] >= 3 else mask
        if not all(np.array_equal(channels[..., 0], channels[..., c]) for c in range(1, channels.shape[2])):
            raise MaskFormatError(
                f'{path}: mask has {mask.shape[2]} channels with different values (a colour or palette '
                'label image?); expected a single-channel 0-255 saliency mask')
        mask = channels[..., 0]
    elif mask.ndim != 2:
        raise MaskFormatError(f'{path}: mask has shape {mask.shape}; expected (H, W)')
    nonzero = mask[mask > 0]
    if nonzero.size:
        top = int(nonzero.max())
        if top < 128:
            raise MaskFormatError(
                f'{path}: mask values are in [0, {top}] (e.g. a 0/1 or class-index map); a saliency '
                'mask stores salient pixels as 255 (thresholded at 128), so this would become all '
                'background. Rescale it to 0/255.')
        values = np.unique(nonzero)
        grey = values[values < 255]
        low_share = float((nonzero < 128).mean())
        if grey.size and int(grey.max()) < 128 and low_share > 0.5:
            raise MaskFormatError(
                f'{path}: mask looks like a multi-class label map (values {values.tolist()[:12]}, '
                f'{low_share:.0%} of non-zero pixels below 128 and no grey level in [128, 255)); '
                'expected a binary 0-255 saliency mask')
    return mask


@TRANSFORMS.register_module()
class LoadSaliencyMask(LoadAnnotations):
    """Load a 0-255 saliency mask into ``gt_seg_map`` as labels 0/1 (``value >= threshold``).

    Samples whose ``seg_map_path`` is None (a mask-free set such as DTD) get an all-zero map of the
    original image size. The mask must have the original image's size (``ori_shape``, set by
    ``LoadImageFromFile``), so this transform may come before or after resizing.

    Required keys: ``seg_map_path``, ``ori_shape``. Added keys: ``gt_seg_map``, ``seg_fields``.

    Args:
        threshold: grey level from which a pixel is salient. 128, as the SOD benchmarks
            (pysodmetrics uses ``gt > 128``; the two differ only for pixels of value exactly 128).
    """

    def __init__(self, threshold: int = 128,
                 imdecode_backend: str = 'pillow', backend_args: Optional[dict] = None) -> None:
        super().__init__(imdecode_backend=imdecode_backend, backend_args=backend_args)
        if not 0 < threshold <= 255:
            raise ValueError(f'threshold must be in (0, 255], got {threshold}')
        self.threshold = threshold

    def _load_seg_map(self, results: dict) -> None:
        path = results.get('seg_map_path')
        shape = tuple(results['ori_shape'][:2]) if 'ori_shape' in results else None
        if path is None:
            if shape is None:
                raise KeyError('LoadSaliencyMask: a mask-free sample needs ori_shape; '
                               'put LoadImageFromFile before it')
            gt = np.zeros(shape, dtype=np.uint8)
        else:
            try:
                raw = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                                       flag='unchanged', backend=self.imdecode_backend)
            except FileNotFoundError:
                raise
            except Exception as exc:  # decoders raise many kinds of errors for broken files
                raise MaskFormatError(f'{path}: mask file could not be decoded: {exc}') from exc
            mask = check_saliency_mask(raw, path)
            if shape is not None and mask.shape != shape:
                raise MaskFormatError(
                    f'{path}: mask size {mask.shape[1]}x{mask.shape[0]} (WxH) differs from its image '
                    f'{results.get("img_path")} of size {shape[1]}x{shape[0]}')
            gt = (mask >= self.threshold).astype(np.uint8)
        results['gt_seg_map'] = gt
        results.setdefault('seg_fields', []).append('gt_seg_map')

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(threshold={self.threshold}, imdecode_backend={self.imdecode_backend!r})'
