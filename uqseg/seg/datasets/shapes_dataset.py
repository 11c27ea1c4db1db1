"""The multiclass shapes demo data set (:func:`~uqseg.seg.datasets.make_shapes_demo` writes it).

mmseg's standard layout, ``img_dir/<split>/<name>.png`` and ``ann_dir/<split>/<name>.png``, with
labels 0 background, 1 disk, 2 box, 3 triangle and, in the ``ood`` split only, ``OOD_INDEX``
(254) on objects of an unseen class; 255 is ``ignore_index``. The label maps are read as they
are (mmseg's ``LoadAnnotations``, ``reduce_zero_label=False``).
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .shapes_demo import CLASSES


@DATASETS.register_module()
class ShapesDataset(BaseSegDataset):
    """The shapes demo: four classes, PNG images and PNG label maps.

    Args:
        set_name: name reported by the metrics for this set (default: the name of the split
            folder, the last part of ``data_prefix['img_path']``, e.g. ``'shift'``; without a
            prefix, the folder name of ``data_root``). It is stored in every sample's
            ``data_info`` as ``set_name``: add ``'set_name'`` (and ``'sample_idx'``) to
            ``PackSegInputs.meta_keys``.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments (``data_root``,
            ``data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val')``,
            ``pipeline``, ...).
    """

    METAINFO = dict(classes=CLASSES, palette=[[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200]])

    def __init__(self, set_name: Optional[str] = None, img_suffix: str = '.png', seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False, **kwargs) -> None:
        split_dir = (kwargs.get('data_prefix') or {}).get('img_path') or kwargs.get('data_root') or '.'
        self.set_name = set_name or osp.basename(osp.normpath(split_dir))
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)

    def load_data_list(self) -> list[dict]:
        """mmseg's listing of the image folder, each sample tagged with ``set_name``."""
        img_dir = self.data_prefix.get('img_path', '')
        if not self.ann_file and not osp.isdir(img_dir):
            raise FileNotFoundError(f'{self.set_name}: image folder {img_dir!r} does not exist '
                                    '(uqseg make-demo-data --only shapes writes the demo)')
        data_list = super().load_data_list()
        if not data_list:
            raise ValueError(f'{self.set_name}: no image with suffix {self.img_suffix!r} found in {img_dir!r}')
        for info in data_list:
            info['set_name'] = self.set_name
        return data_list
