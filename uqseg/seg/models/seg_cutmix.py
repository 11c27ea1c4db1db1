"""CutMix for dense prediction (Yun et al., ICCV 2019), as a batch augment of mmseg's data preprocessor.

With probability ``prob`` a batch is mixed: ``lam ~ Beta(alpha, alpha)``, a box of area
``(1 - lam) H W`` (side ratio ``sqrt(1 - lam)``, centre uniform, clipped to the image) is cut
from each image ``perm(i)`` of a random permutation of the batch and pasted into image ``i``, and
the same box of its label map into label ``i`` (so every pixel keeps its own label: no soft
labels are needed, unlike classification CutMix). One box per batch, as the paper. Random numbers
come from torch's global generator (seeded by the runner; ``ResumeRandomStateHook`` restores it on
resume). The library batch augments (mmpretrain's ``CutMix``, torchvision's ``v2.CutMix``) mix
class labels, not label maps, so this one pastes the maps itself.

    data_preprocessor=dict(type='BatchAugmentSegDataPreProcessor',
                           batch_augments=[dict(type='SegCutMix', alpha=1.0, prob=0.5)])
"""
from __future__ import annotations

import math

import torch
from mmseg.registry import MODELS

__all__ = ['SegCutMix', 'cutmix_box']


def cutmix_box(height: int, width: int, lam: float, generator=None) -> tuple[int, int, int, int]:
    """``(y1, y2, x1, x2)`` of a box with side ratio ``sqrt(1 - lam)``, centre uniform, clipped."""
    ratio = math.sqrt(1.0 - lam)
    h, w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(height, (1,), generator=generator))
    cx = int(torch.randint(width, (1,), generator=generator))
    return max(cy - h // 2, 0), min(cy + h // 2, height), max(cx - w // 2, 0), min(cx + w // 2, width)


@MODELS.register_module()
class SegCutMix:
    """Batch CutMix of images and their ``gt_sem_seg`` maps; see the module docstring."""

    def __init__(self, alpha: float = 1.0, prob: float = 0.5):
        if not float(alpha) > 0:
            raise ValueError(f'SegCutMix: alpha must be > 0, got {alpha!r}')
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f'SegCutMix: prob must be in [0, 1], got {prob!r}')
        self.alpha, self.prob = float(alpha), float(prob)

    def __repr__(self) -> str:
        return f'SegCutMix(alpha={self.alpha}, prob={self.prob})'

    def __call__(self, inputs: torch.Tensor, data_samples: list):
        labels = [s.gt_sem_seg.data for s in data_samples]
        for label in labels:
            if label.shape[-2:] != inputs.shape[-2:]:
                raise ValueError(f'SegCutMix: label map of {tuple(label.shape)} for an input batch of '
                                 f'{tuple(inputs.shape)}; the data preprocessor must pad both to one size')
        if len(data_samples) < 2 or float(torch.rand(())) >= self.prob:
            return inputs, data_samples
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        perm = torch.randperm(inputs.shape[0])
        y1, y2, x1, x2 = cutmix_box(inputs.shape[-2], inputs.shape[-1], lam)
        if y2 <= y1 or x2 <= x1:
            return inputs, data_samples
        mixed = inputs.clone()
        mixed[..., y1:y2, x1:x2] = inputs[perm][..., y1:y2, x1:x2]
        for i, j in enumerate(perm.tolist()):
            new = labels[i].clone()
            new[..., y1:y2, x1:x2] = labels[j][..., y1:y2, x1:x2]
            data_samples[i].gt_sem_seg.data = new
        return mixed, data_samples
