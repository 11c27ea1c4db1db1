"""Opt-in pictures of per-pixel confidence / uncertainty beside the image and its mask."""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..metrics.plot_files import safe_name
from ..metrics.prediction import as_dict, read_prediction, sample_scores, set_name_of
from ..outputs import model_output, resolve_scores, score_names
from ..visualization import save_uncertainty_figure, uncertainty_panels


@HOOKS.register_module()
class UncertaintyMapHook(Hook):
    """Save, for the first ``num_samples`` test images of each set, one PNG with the image, the
    ground-truth mask, the prediction, the top-label confidence ``max_c p_c``, the normalised
    entropy, the error map, the maps of ``scores`` (default: the model's own score, e.g. EDL's
    vacuity or DisMax's MMLES) and (with ``score_field``) a map from the data sample.

    Files: ``<out_dir>/<set name>/<image name>.png``; ``out_dir`` defaults to
    ``<work_dir>/<timestamp>/uncertainty_maps`` (the runner's log folder). Only the main process
    draws, so in a distributed run the "first" samples are the first ones rank 0 sees. Enable it
    in a config with ``custom_hooks = [dict(type='UncertaintyMapHook', num_samples=8)]``.

    Args:
        num_samples: images per set (0 draws nothing).
        out_dir: output folder (see above).
        scores: named scores to draw (:data:`uqseg.core.scores.SCORES`), each on its own
            colour scale; None: the model's own (none for a plain head), ``'own'`` stands for
            it. Each sample's scores follow what produced it (its metainfo); a score the model
            does not have is an error naming it, before the first image.
        score_field: a data-sample field with an extra per-pixel map to show, drawn on its
            own colour scale.
        ignore_index: label value(s) of ignored pixels (drawn grey; an int or a tuple).
        on_val: also draw during validation (into ``<out_dir>/val_<iter>/``), off by default.
    """

    priority = 'LOW'

    def __init__(self, num_samples: int = 4, out_dir: Optional[str] = None, scores: Optional[Sequence[str]] = None,
                 score_field: Optional[str] = None, ignore_index=255, on_val: bool = False) -> None:
        if num_samples < 0:
            raise ValueError(f'num_samples must be >= 0, got {num_samples}')
        self.num_samples = num_samples
        self.out_dir = out_dir
        self.scores = score_names(scores)
        self.score_field = score_field
        self.ignore_index = ignore_index
        self.on_val = on_val
        self._seen: dict[str, int] = {}

    def _folder(self, runner) -> str:
        return self.out_dir or osp.join(runner.log_dir, 'uncertainty_maps')

    def _resolve_scores(self, runner) -> None:
        resolve_scores(model_output(runner.model), self.scores)  # a score the model lacks: an error now

    def before_test_epoch(self, runner) -> None:
        self._seen = {}
        self._resolve_scores(runner)

    def before_val_epoch(self, runner) -> None:
        self._seen = {}
        if self.on_val:
            self._resolve_scores(runner)

    def after_test_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        self._draw(self._folder(runner), outputs)

    def after_val_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                       outputs: Optional[Sequence] = None) -> None:
        if self.on_val:
            self._draw(osp.join(self._folder(runner), f'val_{runner.iter}'), outputs)

    def _draw(self, folder: str, outputs: Optional[Sequence]) -> None:
        if not self.num_samples or not is_main_process():
            return
        for sample in outputs or ():
            d = as_dict(sample)
            set_name = set_name_of(d)
            if self._seen.get(set_name, 0) >= self.num_samples:
                continue
            self._seen[set_name] = self._seen.get(set_name, 0) + 1
            has_gt = 'gt_sem_seg' in d
            pred = read_prediction(d, self.ignore_index, require_label=False)
            panels = uncertainty_panels(pred, d, self.score_field, has_gt=has_gt,
                                        scores=sample_scores(pred, self.scores))
            path = d.get('img_path')
            image = None
            if path and osp.isfile(path):
                bgr = cv2.imread(path, cv2.IMREAD_COLOR)
                if bgr is not None:
                    h, w = pred.label.shape
                    if bgr.shape[:2] != (h, w):
                        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
                    image = np.ascontiguousarray(bgr[..., ::-1])
            stem = osp.splitext(osp.basename(path))[0] if path else f'sample_{self._seen[set_name]}'
            save_uncertainty_figure(image, panels, osp.join(folder, safe_name(set_name), stem + '.png'),
                                    title=f'{set_name} / {stem}')
