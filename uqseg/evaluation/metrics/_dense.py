"""Shared reading of mmseg predictions for the dense metrics."""
from __future__ import annotations

import torch


def set_name_of(data_sample: dict, default: str = 'all') -> str:
    """The test set a sample belongs to (``set_name`` packed by ``PackSegInputs.meta_keys``)."""
    return str(data_sample.get('set_name') or data_sample.get('metainfo', {}).get('set_name') or default)


def probabilities_and_labels(data_sample: dict, ignore_index: int = 255
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(probs, label, valid) of one mmseg prediction, on the prediction's device.

    ``seg_logits`` of a binary head (one channel) already holds sigmoid probabilities (mmseg's
    ``postprocess_result`` applies it); a multi-class head's holds logits, which are soft-maxed
    here. Returns ``probs`` of shape (C, H, W) with C >= 2 (binary: [1 - p, p]), the label map
    (H, W) and the mask of valid (not ignored) pixels.
    """
    path = data_sample.get('img_path', '<unknown image>')
    logits = data_sample['seg_logits']['data']
    label = data_sample['gt_sem_seg']['data']
    if logits.dim() != 3:
        raise ValueError(f'{path}: seg_logits must be (C, H, W), got shape {tuple(logits.shape)}')
    label = label.squeeze(0) if label.dim() == 3 else label
    if label.shape != logits.shape[1:]:
        raise ValueError(f'{path}: prediction of size {tuple(logits.shape[1:])} but ground truth of size '
                         f'{tuple(label.shape)}')
    if not torch.isfinite(logits).all():
        bad = logits[~torch.isfinite(logits)]
        raise ValueError(f'{path}: seg_logits contain {bad.numel()} non-finite value(s) (e.g. {bad[0].item()})')
    valid = label != ignore_index
    num_classes = max(2, logits.shape[0])
    bad_labels = label[valid & ((label < 0) | (label >= num_classes))]
    if bad_labels.numel():
        raise ValueError(f'{path}: ground truth has label {bad_labels[0].item()} outside 0..{num_classes - 1} '
                         f'and not ignore_index={ignore_index}')
    if logits.shape[0] == 1:
        p = logits[0].float()
        if p.min() < 0 or p.max() > 1:
            raise ValueError(f'{path}: binary seg_logits must be sigmoid probabilities in [0, 1], got range '
                             f'[{p.min().item():.4g}, {p.max().item():.4g}]')
        probs = torch.stack([1 - p, p])
    else:
        probs = logits.float().softmax(dim=0)
    return probs, label.long(), valid
