"""Write test predictions as PNG maps, the form in which SOD methods publish their results."""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class SavePredictionMapsHook(Hook):
    """Save each test prediction to ``out_dir/<set name>/<image name>.png``.

    Binary heads (one channel; mmseg stores sigmoid probabilities in ``seg_logits``): the
    foreground probability as uint8 ``round(255 p)``. Multi-class heads: the predicted class
    index. Used by ``tools/test.py --out``.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def after_test_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        for sample in outputs or ():
            logits = sample.seg_logits.data
            if logits.shape[0] == 1:
                img = (logits[0].float().clamp(0, 1) * 255).round().to(torch.uint8)
            else:
                img = sample.pred_sem_seg.data[0].to(torch.uint8)
            folder = osp.join(self.out_dir, str(sample.metainfo.get('set_name', 'test')))
            os.makedirs(folder, exist_ok=True)
            name = osp.splitext(osp.basename(sample.metainfo['img_path']))[0]
            cv2.imwrite(osp.join(folder, name + '.png'), img.cpu().numpy())
