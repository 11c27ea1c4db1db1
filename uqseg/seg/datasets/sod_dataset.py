"""Salient object detection (SOD) datasets: an image and a binary saliency mask per sample.

Masks are stored as 8-bit grey images with values 0 (background) to 255 (salient), often with soft
(anti-aliased) edges; :class:`~uqseg.seg.datasets.LoadSaliencyMask` thresholds them at 128
into labels 0/1, leaving 255 free for ``ignore_index``. An out-of-distribution texture set (DTD)
has no masks: every pixel is background.

The standard layouts of the public data sets are in :data:`SOD_LAYOUTS`; ``layout='DUTS-TE'``
fills ``data_prefix`` and the suffixes, and any of them can still be given explicitly.
A split file (``ann_file``) lists image names without suffix, one per line, relative to the image
folder (``tools/make_sod_split.py`` writes the held-out DUTS-TR validation split and the DTD
subset).
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmengine import fileio
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

#: Folder layout of each public SOD data set, relative to its own root folder.
SOD_LAYOUTS: dict[str, dict] = {
    'DUTS-TR': dict(img_path='DUTS-TR-Image', seg_map_path='DUTS-TR-Mask',
                    img_suffix='.jpg', seg_map_suffix='.png'),
    'DUTS-TE': dict(img_path='DUTS-TE-Image', seg_map_path='DUTS-TE-Mask',
                    img_suffix='.jpg', seg_map_suffix='.png'),
    'ECSSD': dict(img_path='images', seg_map_path='ground_truth_mask',
                  img_suffix='.jpg', seg_map_suffix='.png'),
    'DUT-OMRON': dict(img_path='DUT-OMRON-image', seg_map_path='pixelwiseGT-new-PNG',
                      img_suffix='.jpg', seg_map_suffix='.png'),
    'HKU-IS': dict(img_path='imgs', seg_map_path='gt', img_suffix='.png', seg_map_suffix='.png'),
    'PASCAL-S': dict(img_path='Imgs', seg_map_path='GT', img_suffix='.jpg', seg_map_suffix='.png'),
    'SOD': dict(img_path='Imgs', seg_map_path='GT', img_suffix='.jpg', seg_map_suffix='.png'),
    # Describable Textures: images/<category>/<name>.jpg, no masks (all background).
    'DTD': dict(img_path='images', seg_map_path=None, img_suffix='.jpg', seg_map_suffix='.png'),
}


class SampleLoadError(RuntimeError):
    """A sample whose files could not be loaded or transformed; the message names them."""


def _short_list(names: list[str], limit: int = 5) -> str:
    shown = ', '.join(repr(n) for n in names[:limit])
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return f'{shown}{more}'


@DATASETS.register_module()
class SODDataset(BaseSegDataset):
    """Binary salient-object dataset (classes background / foreground).

    Args:
        layout: key of :data:`SOD_LAYOUTS` giving the default ``data_prefix`` and suffixes.
        set_name: name reported by the metrics for this set (default: ``layout`` or the folder
            name). It is stored in every sample's ``data_info`` as ``set_name``: add
            ``'set_name'`` (and ``'sample_idx'``) to ``PackSegInputs.meta_keys``.
        mask_free: no masks on disk; every pixel is background (the OOD texture set).
            Defaults to True for ``layout='DTD'``.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments (``data_root``, ``ann_file``,
            ``data_prefix``, ``img_suffix``, ``seg_map_suffix``, ``pipeline``, ...).
    """

    METAINFO = dict(classes=('background', 'foreground'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self, layout: Optional[str] = None, set_name: Optional[str] = None,
                 mask_free: Optional[bool] = None, **kwargs) -> None:
        if layout is not None:
            if layout not in SOD_LAYOUTS:
                raise KeyError(f'unknown SOD layout {layout!r}; known layouts: {sorted(SOD_LAYOUTS)}')
            spec = SOD_LAYOUTS[layout]
            prefix = dict(img_path=spec['img_path'], seg_map_path=spec['seg_map_path'] or '')
            prefix.update(kwargs.pop('data_prefix', None) or {})
            kwargs['data_prefix'] = prefix
            kwargs.setdefault('img_suffix', spec['img_suffix'])
            kwargs.setdefault('seg_map_suffix', spec['seg_map_suffix'])
            if mask_free is None:
                mask_free = spec['seg_map_path'] is None
        self.layout = layout
        self.mask_free = bool(mask_free)
        self.set_name = set_name or layout or osp.basename(osp.normpath(kwargs.get('data_root') or '.'))
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(**kwargs)

    def prepare_data(self, idx: int):
        """Run the pipeline on sample ``idx``; a failure names the sample's image and mask files.

        Decoders often fail without the file name (OpenCV's ``!buf.empty()`` for an empty file);
        errors that already name the file pass through unchanged.
        """
        try:
            return super().prepare_data(idx)
        except Exception as exc:
            info = self.get_data_info(idx)
            paths = [p for p in (info.get('img_path'), info.get('seg_map_path')) if p]
            if any(p in str(exc) for p in paths):
                raise
            raise SampleLoadError(
                f'{self.set_name}: sample {idx} (image {paths[0]!r}'
                f'{", mask " + repr(paths[1]) if len(paths) > 1 else ""}) failed to load: '
                f'{type(exc).__name__}: {exc}'.rstrip()) from exc

    def load_data_list(self) -> list[dict]:
        """List image/mask pairs; fail with the offending names if anything does not pair up."""
        img_dir = self.data_prefix.get('img_path', '')
        seg_dir = self.data_prefix.get('seg_map_path', '')
        where = f'{self.set_name} ({img_dir})'
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'{where}: image folder {img_dir!r} does not exist')
        if not self.mask_free and not osp.isdir(seg_dir):
            raise FileNotFoundError(f'{where}: mask folder {seg_dir!r} does not exist')

        images = sorted(
            f[:-len(self.img_suffix)] for f in fileio.list_dir_or_file(
                img_dir, list_dir=False, suffix=self.img_suffix, recursive=True,
                backend_args=self.backend_args))
        masks = set() if self.mask_free else {
            f[:-len(self.seg_map_suffix)] for f in fileio.list_dir_or_file(
                seg_dir, list_dir=False, suffix=self.seg_map_suffix, recursive=True,
                backend_args=self.backend_args)}

        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'{where}: split file {self.ann_file!r} does not exist')
            names = [ln.strip() for ln in fileio.list_from_file(self.ann_file, backend_args=self.backend_args)]
            names = [n for n in names if n]
            if not names:
                raise ValueError(f'{where}: split file {self.ann_file!r} lists no image')
            have = set(images)
            missing = [n for n in names if n not in have]
            if missing:
                raise FileNotFoundError(
                    f'{where}: split file {self.ann_file!r} names {len(missing)} image(s) not found as '
                    f'{img_dir}/<name>{self.img_suffix}: {_short_list(missing)}')
        else:
            names = images
            if not self.mask_free:
                orphans = sorted(masks - set(images))
                if orphans:
                    raise FileNotFoundError(
                        f'{where}: {len(orphans)} mask(s) in {seg_dir!r} have no image '
                        f'{img_dir}/<name>{self.img_suffix}: {_short_list(orphans)}')
        if not names:
            raise ValueError(f'{where}: no image with suffix {self.img_suffix!r} found in {img_dir!r}')
        if not self.mask_free:
            unmasked = [n for n in names if n not in masks]
            if unmasked:
                raise FileNotFoundError(
                    f'{where}: {len(unmasked)} image(s) have no mask {seg_dir}/<name>{self.seg_map_suffix}: '
                    f'{_short_list(unmasked)}')

        return [
            dict(img_path=osp.join(img_dir, n + self.img_suffix),
                 seg_map_path=None if self.mask_free else osp.join(seg_dir, n + self.seg_map_suffix),
                 label_map=self.label_map, reduce_zero_label=self.reduce_zero_label,
                 seg_fields=[], set_name=self.set_name)
            for n in names
        ]
