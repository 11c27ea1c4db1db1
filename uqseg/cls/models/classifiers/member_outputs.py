"""What an ensemble, MC dropout or TTA classifier puts in its predicted data samples: one rule.

The members (models, stochastic passes, views) of a batch feed one
:class:`~uqseg.core.member_statistics.MemberStatistics` (one member at a time, memory independent
of their number); :func:`member_predictions` turns it into mmpretrain ``DataSample`` s:

* ``pred_score`` ``(K,)`` float32: the mean probability (EDL members: ``alpha / S``, DisMax
  members: ``softmax`` of the distance logits), ``pred_label`` its argmax;
* ``pred_logits`` ``(K,)`` float32: ``log`` of the mean probability (``mean_logits()``: its
  softmax is the mean), what a single model puts there, so metrics and ``uqseg dump-outputs`` read
  an ensemble as a model with output kind ``'logits'``;
* ``pred_member_scores`` ``(S,)`` float64: the sample's raw member maps
  (:meth:`MemberStatistics.maps`: mutual information, expected entropy, class variance,
  disagreement, and the members' averaged layer scores such as ``vacuity``), in the order of the
  metainfo ``member_scores`` (:data:`~uqseg.core.scores.MEMBER_SCORES_KEY`);
* metainfo ``output_kind='logits'``, ``default_score='mutual-information'`` (the prediction's own
  score), ``members`` (the count), ``member_scores`` (names), ``member_kinds`` (the members' kinds).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from mmpretrain.structures import DataSample

from ....core.default_scores import MEMBER_OWN_SCORE
from ....core.member_statistics import MemberStatistics
from ....core.scores import MEMBER_KINDS_KEY, MEMBER_SCORES_KEY, MEMBERS_KEY, OUTPUT_KIND_KEY, OWN_SCORE_KEY

__all__ = ['MEMBER_SCORES_FIELD', 'member_predictions', 'sample_member_maps']

#: The data field holding a sample's member maps, ``(S,)`` float64 in the order of metainfo ``member_scores``.
MEMBER_SCORES_FIELD = 'pred_member_scores'


def member_predictions(stats: MemberStatistics, data_samples: Optional[Sequence[DataSample]]) -> List[DataSample]:
    """The predicted data samples of a batch whose members fed ``stats`` (module docstring);
    ``data_samples`` are filled in place (None: new ones)."""
    summary = stats.compute()
    maps = {k: v.detach() for k, v in summary.maps().items()}
    names = list(maps)
    mean = summary.mean.detach()
    labels = mean.argmax(1)
    logits = stats.mean_logits().detach()
    table = torch.stack([maps[n].reshape(-1) for n in names], 1) if names else mean.new_zeros(mean.shape[0], 0)
    meta = {OUTPUT_KIND_KEY: 'logits', OWN_SCORE_KEY: MEMBER_OWN_SCORE, MEMBERS_KEY: int(stats.count),
            MEMBER_SCORES_KEY: names, MEMBER_KINDS_KEY: list(stats.kinds)}
    if data_samples is None:
        data_samples = [DataSample() for _ in range(mean.shape[0])]
    out = []
    for sample, p, y, z, m in zip(data_samples, mean.float(), labels, logits.float(), table):
        sample = DataSample() if sample is None else sample
        sample.set_pred_score(p).set_pred_label(y.reshape(1))
        sample.set_field(z, 'pred_logits', dtype=torch.Tensor)
        sample.set_field(m.double(), MEMBER_SCORES_FIELD, dtype=torch.Tensor)
        sample.set_metainfo(meta)
        out.append(sample)
    return out


def sample_member_maps(sample: dict, source: str) -> Optional[dict]:
    """``{name: value}`` of one sample's member maps (a data sample as a dict), None without any;
    names and values that disagree in number are a ``ValueError`` naming ``source``."""
    names = sample.get(MEMBER_SCORES_KEY)
    values = sample.get(MEMBER_SCORES_FIELD)
    if names is None and values is None:
        return None
    if names is None or values is None:
        raise ValueError(f'{source}: a data sample has {MEMBER_SCORES_KEY!r} metainfo or a {MEMBER_SCORES_FIELD!r} '
                         'field but not both; an ensemble prediction carries both (member_predictions)')
    values = torch.as_tensor(values).reshape(-1)
    if len(names) != values.numel():
        raise ValueError(f'{source}: a data sample names {len(names)} member scores {list(names)} but holds '
                         f'{values.numel()} values')
    return {str(n): v for n, v in zip(names, values.double().cpu())}
