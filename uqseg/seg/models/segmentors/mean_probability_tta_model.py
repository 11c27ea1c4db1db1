"""mmseg's ``SegTTAModel`` whose views are members: the merged distribution in ``seg_logits`` and
the views' member maps.

mmseg's ``SegTTAModel.merge_preds`` averages the views' probabilities (softmax, or sigmoid for
one channel) into the prediction but leaves ``seg_logits`` holding the last view's, so a metric
reading ``seg_logits`` scores one view. ``MeanProbabilitySegTTAModel`` treats the views (flip,
multi-scale) as members: each view's ``seg_logits`` (of the kind its sample says: logits, EDL's
``log alpha``, DisMax's distance logits, or a one-channel sigmoid map ``p`` as ``[1 - p, p]``) is
fed to one :class:`~uqseg.core.member_statistics.MemberStatistics` per image
(:mod:`.member_samples`), and the merged sample holds ``log(mean p)`` (whose softmax is ``mean p``;
one channel: the mean probability itself, as mmseg stores sigmoid outputs), the prediction
(argmax; one channel: ``mean p > threshold``) and the member maps (``seg_mutual_information``, ...):
calibration and uncertainty metrics score the TTA model's own prediction, and the views' mutual
information is a score. For one-channel heads mmseg 1.2.2 applies ``sigmoid`` to the stored
``seg_logits``, which ``postprocess_result`` already made probabilities, so its merged prediction
thresholds ``sigmoid(p) > 0.5`` for every pixel; here the prediction is ``mean p > threshold``.
Views of an ensemble or of MC dropout are their mixtures (kind ``logits``). ``uqseg test --tta``
uses it in place of ``SegTTAModel``.
"""
from __future__ import annotations

from mmseg.models.segmentors import SegTTAModel
from mmseg.registry import MODELS

from ....core.scores import PROBS
from ...outputs import members_output, model_output, sample_output
from .member_samples import add_member, new_statistics, write_members

__all__ = ['MeanProbabilitySegTTAModel']


@MODELS.register_module()
class MeanProbabilitySegTTAModel(SegTTAModel):
    """``SegTTAModel`` whose views are members (module docstring)."""

    @property
    def source(self) -> str:
        return f'TTA views of {model_output(self.module).source}'

    def member_output(self):
        """What its samples hold (the number of views is known once they are seen: ``members=0`` here)."""
        inner = model_output(self.module)
        kind = inner.kind if getattr(self.module, 'out_channels', 2) > 1 else PROBS
        return members_output(self.source, (kind,), members=0)

    def merge_preds(self, data_samples_list):
        threshold = getattr(getattr(self.module, 'decode_head', None), 'threshold',
                            getattr(self.module, 'threshold', None))
        merged = []
        for views in data_samples_list:
            stats = new_statistics(1)
            for i, view in enumerate(views):
                add_member(stats, [view], sample_output(view).kind, f'TTA view {i}')
            out = views[0]
            write_members(out, stats[0], self.source, threshold)
            merged.append(out)
        return merged
