"""Save the random number generators in checkpoints so that a resumed run repeats the original."""
from __future__ import annotations

import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import HOOKS

KEY = 'uqseg_random_state'


@HOOKS.register_module()
class ResumeRandomStateHook(Hook):
    """Store the RNG states in every checkpoint and restore them on ``--resume``.

    mmengine restores weights, optimizer and schedulers but not the random number generators.
    A resumed run therefore draws different dropout masks (torch RNG) and, for epoch-based
    loops, different augmentations (numpy / python RNG in the main process) from the run it
    continues, and ends on other weights.

    This hook saves torch (CPU and CUDA), numpy and python states under
    ``checkpoint['uqseg_random_state']`` and, when a run resumes (``runner.iter > 0`` at
    ``before_train``), puts back

    * the torch states (model randomness such as dropout), always;
    * the numpy / python states only for epoch-based loops: an ``IterBasedTrainLoop`` replays the
      data pipeline of the iterations already done to skip them, which redraws the same
      augmentations from the seeded generators and leaves them in the saved state by itself.

    With it, a run resumed from a checkpoint ends on the same weights as the uninterrupted run
    (tested), for the same number of processes and dataloader workers. Checkpoints without the
    key (older runs) resume as mmengine does, with a warning.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._loaded: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[KEY] = dict(
            iter=runner.iter,
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            numpy=np.random.get_state(),
            python=random.getstate())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(KEY)

    def before_train(self, runner) -> None:
        if runner.iter == 0:  # a new run, or load_from (fine-tuning): keep the run's own seeding
            self._loaded = None
            return
        state, self._loaded = self._loaded, None
        if state is None:
            runner.logger.warning('ResumeRandomStateHook: the checkpoint has no random state; the resumed run '
                                  'will not repeat the original one exactly')
            return
        torch.set_rng_state(state['torch'])
        if state['cuda'] and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state['cuda'])
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            np.random.set_state(state['numpy'])
            random.setstate(state['python'])
