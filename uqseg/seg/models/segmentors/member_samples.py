"""The predicted sample of several members (an ensemble, MC-dropout passes, TTA views): one rule.

Each member's per-image ``seg_logits`` as mmseg's ``postprocess_result`` stores them (cropped,
flipped back and resized to the original size; one channel: the sigmoid probability ``p``) is
fed to one :class:`~uqseg.core.member_statistics.MemberStatistics` per image
(:func:`add_member`), so memory does not grow with the number of members. :func:`write_members`
then writes the mixture into the sample: ``seg_logits`` = the log of the mean probability (one
channel when every member had one: the mean foreground probability, as mmseg stores sigmoid
outputs), ``pred_sem_seg`` its argmax (one channel: ``mean p > threshold``), the metainfo of
:func:`uqseg.seg.outputs.members_output` and one float64 ``(1, H, W)`` field per member map
(:func:`uqseg.seg.outputs.member_map_field`, e.g. ``seg_mutual_information``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from mmengine.structures import PixelData

from ....core.member_statistics import MemberStatistics
from ....core.scores import PROBS
from ...outputs import member_map_field, members_output

__all__ = ['member_input', 'add_member', 'new_statistics', 'write_members']


def member_input(seg_logits: torch.Tensor, kind: str) -> tuple[torch.Tensor, str]:
    """One image's ``(C, H, W)`` ``seg_logits`` (as ``postprocess_result`` stores them) as one
    member's ``(1, K, H, W)`` outputs and their kind: a one-channel map ``p`` is the two-class
    distribution ``[1 - p, p]`` (kind ``'probs'``)."""
    if seg_logits.shape[0] == 1:
        p = seg_logits.double()
        return torch.cat([1 - p, p])[None], PROBS
    return seg_logits[None], kind


def new_statistics(n: int) -> List[MemberStatistics]:
    """One empty :class:`MemberStatistics` per image of a batch of ``n``."""
    return [MemberStatistics(dim=1) for _ in range(n)]


def add_member(stats: Sequence[MemberStatistics], samples: Sequence, kind: str, source: str) -> None:
    """Feed one member's predicted ``samples`` (their ``seg_logits``, outputs of ``kind``) to the
    per-image ``stats``; ``source`` names the member in errors."""
    for st, sample in zip(stats, samples):
        z, k = member_input(sample.seg_logits.data, kind)
        st.update(z, k, source=source)


def write_members(sample, stats: MemberStatistics, source: str, threshold: Optional[float] = None):
    """Write the members' mixture into ``sample`` (module docstring); ``threshold``: the
    one-channel decision threshold (mmseg's ``decode_head.threshold``). Returns ``sample``."""
    summary = stats.compute()
    maps = summary.maps()
    if all(k == PROBS for k in summary.kinds) and summary.mean.shape[1] == 2:  # one-channel members
        fg = summary.mean[:, 1]
        t = 0.5 if threshold is None else threshold
        seg_logits, pred = fg.float(), (fg > t).float()
    else:
        seg_logits, pred = stats.mean_logits()[0], summary.mean[0].max(0, keepdim=True)[1]
    out = members_output(source, summary.kinds, maps=tuple(maps))
    sample.set_metainfo(out.metainfo())
    sample.set_data({'seg_logits': PixelData(data=seg_logits), 'pred_sem_seg': PixelData(data=pred)})
    sample.set_data({member_map_field(name): PixelData(data=m) for name, m in maps.items()})
    return sample
