"""Exact resume: the random number generators, and the validation a checkpoint was written before."""
from __future__ import annotations

import bisect
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop, EpochBasedTrainLoop, IterBasedTrainLoop

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

    **Checkpoints at validation iterations.** mmengine's ``CheckpointHook`` writes the checkpoint
    of iteration ``N`` in ``after_train_iter``, *before* the validation of iteration ``N`` (the
    usual set-up, ``checkpoint.interval == val_interval``), and ``--resume`` goes on with
    iteration ``N + 1``: the validation is never run. Its effects are then missing from the
    resumed run: the state hooks take from it (ASLP's ``Acc_val``; any hook reading
    ``after_val_epoch``) and the torch random draw that building the validation loader's
    iterator makes. So the hook records in the checkpoint whether the validation of its
    iteration (epoch, for an ``EpochBasedTrainLoop``, whose checkpoints come in
    ``after_train_epoch``, likewise before the validation) had run, and on resume, after restoring
    the generators, runs that validation (``runner.val_loop.run()``, with every hook) when the
    train loop would have run it there. A checkpoint written after the validation (``save_best``
    in ``after_val_epoch``) is marked as validated and resumes without it. A resumed run then ends
    on the same weights and hook state as the uninterrupted one, whatever the checkpoint interval
    (tested with checkpoint interval == validation interval, iteration- and epoch-based).

    With it, a run resumed from a checkpoint ends on the same weights as the uninterrupted run
    (tested), for the same number of processes and dataloader workers. Checkpoints without the
    key (older runs) resume as mmengine does, with a warning.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._loaded: Optional[dict] = None
        self._val_at: Optional[int] = None  # train-loop progress (iteration / epoch) of the last validation

    def before_val_epoch(self, runner) -> None:
        # before the other hooks' after_val_epoch, where CheckpointHook writes a save_best checkpoint
        if isinstance(runner._train_loop, BaseLoop):  # a validation inside training
            self._val_at = progress(runner.train_loop)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = runner._train_loop
        by_epoch = isinstance(loop, EpochBasedTrainLoop)
        resume_at = checkpoint.get('meta', {}).get('epoch' if by_epoch else 'iter')
        checkpoint[KEY] = dict(
            iter=runner.iter,
            validated=self._val_at is not None and self._val_at == resume_at,  # the resume point's validation ran
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
        loop = runner.train_loop
        if not isinstance(loop, IterBasedTrainLoop):
            np.random.set_state(state['numpy'])
            random.setstate(state['python'])
        at = progress(loop)
        if not state.get('validated', False) and validates_at(loop, at):
            unit = 'epoch' if isinstance(loop, EpochBasedTrainLoop) else 'iteration'
            runner.logger.info(f'ResumeRandomStateHook: the checkpoint was written before the validation of '
                               f'{unit} {at}; running it now, as the uninterrupted run did')
            runner.val_loop.run()


def progress(loop) -> int:
    """Iterations (``IterBasedTrainLoop``) or epochs (``EpochBasedTrainLoop``) done: the counter the
    loop's validation schedule is written in."""
    return loop.epoch if isinstance(loop, EpochBasedTrainLoop) else loop.iter


def validates_at(loop, at: int) -> bool:
    """Whether the train loop runs a validation once ``at`` iterations (epochs, epoch-based) are done,
    as its ``run`` decides; False for loops of other kinds or without validation."""
    if not isinstance(loop, (IterBasedTrainLoop, EpochBasedTrainLoop)) or loop.runner._val_loop is None:
        return False
    # the interval in force then, as the loop's _decide_current_val_interval sets it
    interval = loop.dynamic_intervals[bisect.bisect(loop.dynamic_milestones, at + 1) - 1]
    last = loop.max_epochs if isinstance(loop, EpochBasedTrainLoop) else loop.max_iters
    return at >= loop.val_begin and (at % interval == 0 or at == last)
