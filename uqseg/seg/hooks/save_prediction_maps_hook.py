"""Write test predictions as PNG maps, the form in which SOD methods publish their results."""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

import cv2
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..metrics.plot_files import safe_name
from ..metrics.prediction import read_prediction, set_name_of


@HOOKS.register_module()
class SavePredictionMapsHook(Hook):
    """Save each test prediction to ``out_dir/<set name>/<image name>.png``.

    Binary heads (one channel; mmseg stores sigmoid probabilities in ``seg_logits``): the
    foreground probability as uint8 ``round(255 p)``. Multi-class heads: the predicted class
    index (:meth:`~uqseg.seg.metrics.prediction.DensePrediction.saliency_map`). The set name is
    the sample's ``set_name`` (default ``'all'``). Used by ``tools/test.py --out``.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, ignore_index: int = 255) -> None:
        self.out_dir = out_dir
        self.ignore_index = ignore_index

    def after_test_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        for sample in outputs or ():
            pred = read_prediction(sample, self.ignore_index, require_label=False)
            folder = osp.join(self.out_dir, safe_name(set_name_of(sample)))
            os.makedirs(folder, exist_ok=True)
            name = osp.splitext(osp.basename(pred.path))[0]
            cv2.imwrite(osp.join(folder, name + '.png'), pred.saliency_map().cpu().numpy())
