"""Stop training at the first non-finite loss, naming the iteration and the loss terms."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class CheckFiniteLossHook(Hook):
    """Raise ``FloatingPointError`` as soon as a training loss is NaN or infinite.

    mmengine's ``CheckInvalidLossHook`` checks only every ``interval`` iterations and does not
    say where; this one checks every iteration (a scalar check, no measurable cost) and the
    message names the iteration (1-based, as the logger counts), the epoch and every loss term,
    so the culprit term and the last good checkpoint are easy to find. The optimizer step of the
    failing iteration has already run: resume from a checkpoint saved before it.
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[Union[dict, tuple, list]] = None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or 'loss' not in outputs:
            return
        loss = outputs['loss']
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if math.isfinite(value):
            return
        terms = ', '.join(f'{k}={float(v.detach()) if isinstance(v, torch.Tensor) else v:.6g}'
                          for k, v in outputs.items())
        img_paths: Sequence[str] = ()
        if isinstance(data_batch, dict) and data_batch.get('data_samples'):
            img_paths = [s.metainfo.get('img_path', '?') for s in data_batch['data_samples']]
        raise FloatingPointError(
            f'non-finite training loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): {terms}. '
            f'Batch images: {list(img_paths)[:8]}. Lower the learning rate or check the inputs '
            '(and loss_scale if training with --amp); resume from a checkpoint saved before this iteration.')
