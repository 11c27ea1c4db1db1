"""Write test predictions as PNG maps, the form in which SOD methods publish their results, and the
uncertainty maps of the model's scores beside them."""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..metrics.plot_files import safe_name
from ..metrics.prediction import raw_score_map, read_prediction, sample_scores, set_name_of
from ..outputs import model_output, resolve_scores, score_names


@HOOKS.register_module()
class SavePredictionMapsHook(Hook):
    """Save each test prediction to ``out_dir/<set name>/<image name>.png`` and, for every score
    of ``scores``, its map to ``out_dir/<set name>/<image name>_<score>.npy``.

    Binary heads (one sigmoid channel, or a two-class softmax such as EDL / DisMax on SOD): the
    foreground probability as uint8 ``round(255 p)``. Heads of three or more classes: the predicted class
    index (:meth:`~uqseg.seg.metrics.prediction.DensePrediction.saliency_map`). The set name is
    the sample's ``set_name`` (default ``'all'``). Used by ``uqseg test --out``.

    Args:
        out_dir: the folder.
        scores: named scores (:data:`uqseg.core.scores.SCORES`, and of several members
            :data:`uqseg.core.scores.MEMBER_SCORES`) to write as float32 ``(H, W)`` arrays of their
            definition (:func:`uqseg.core.scores.raw_score`: EDL's vacuity ``u``, DisMax's MMLES,
            ...; the member maps the sample carries). None (default): the model's own score (EDL
            'vacuity', DisMax 'MMLES', IsoMax+ 'MDS', 'mutual-information' of an ensemble, MC
            dropout or TTA; none for a plain head), ``'own'`` stands for it. Each sample's
            scores follow what produced it (its metainfo, :func:`uqseg.seg.outputs.sample_output`);
            a score the model's head does not have is an error naming it, before the first image.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, scores: Optional[Sequence[str]] = None) -> None:
        self.out_dir = out_dir
        self.scores = score_names(scores)

    def before_test(self, runner) -> None:
        resolve_scores(model_output(runner.model), self.scores)  # a score the model lacks: an error now

    def after_test_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        for sample in outputs or ():
            pred = read_prediction(sample, use_label=False)
            folder = osp.join(self.out_dir, safe_name(set_name_of(sample)))
            os.makedirs(folder, exist_ok=True)
            name = osp.splitext(osp.basename(pred.path))[0]
            cv2.imwrite(osp.join(folder, name + '.png'), pred.saliency_map().cpu().numpy())
            for score in sample_scores(pred, self.scores):
                m = raw_score_map(pred, score).float().cpu().numpy()
                np.save(osp.join(folder, f'{name}_{score}.npy'), m)
