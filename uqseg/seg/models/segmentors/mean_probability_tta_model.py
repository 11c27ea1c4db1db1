"""mmseg's ``SegTTAModel`` with the merged distribution in ``seg_logits``.

mmseg's ``SegTTAModel.merge_preds`` averages the views' probabilities (softmax, or sigmoid for
one channel) into the prediction but leaves ``seg_logits`` holding the last view's, so a metric
reading ``seg_logits`` scores one view. ``MeanProbabilitySegTTAModel`` stores the merged
distribution instead, as ``log(mean p)`` (whose softmax is ``mean p``; one channel: the mean
probability itself, as mmseg stores sigmoid outputs), so calibration and uncertainty metrics
score the TTA model's own prediction. Heads whose channels are not logits (EDL's ``log alpha``,
DisMax's distance logits, whose scores read the channels themselves) keep mmseg's merge. For
one-channel heads mmseg 1.2.2 applies ``sigmoid`` to the stored ``seg_logits``, which
``postprocess_result`` already made probabilities, so its merged prediction thresholds
``sigmoid(p) > 0.5`` for every pixel; here the prediction is ``mean p > threshold``.
``uqseg test --tta`` uses it in place of ``SegTTAModel``.
"""
from __future__ import annotations

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors import SegTTAModel
from mmseg.registry import MODELS

from ...outputs import model_output

__all__ = ['MeanProbabilitySegTTAModel']


@MODELS.register_module()
class MeanProbabilitySegTTAModel(SegTTAModel):
    """``SegTTAModel`` whose merged samples' ``seg_logits`` is the merged distribution."""

    def merge_preds(self, data_samples_list):
        merged = super().merge_preds(data_samples_list)
        if model_output(self.module).kind != 'logits':
            return merged
        for out, views in zip(merged, data_samples_list):
            logits = torch.stack([v.seg_logits.data for v in views])
            if self.module.out_channels > 1:
                mean = logits.softmax(1).mean(0).clamp_min(torch.finfo(logits.dtype).tiny)
                out.set_data({'seg_logits': PixelData(data=mean.log())})
            else:  # mmseg's postprocess_result already stored sigmoid probabilities
                mean = logits.mean(0)
                pred = (mean > self.module.decode_head.threshold).to(mean)
                out.set_data({'seg_logits': PixelData(data=mean), 'pred_sem_seg': PixelData(data=pred)})
        return merged
