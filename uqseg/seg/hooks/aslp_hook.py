"""ASLP's alpha learning rule as an mmengine hook (Liu et al., ICCV 2023; ``docs/aslp.md#alpha-update-rule``).

Works with a decode head ``dict(type='ASLPHead', head=dict(...))``
(:class:`~uqseg.seg.models.heads.ASLPHead`) and an :class:`~uqseg.core.sc_bce.SCBCELoss`;
conventions in ``docs/aslp.md``. Per training iteration the head keeps, for every
image of the batch, its ``sample_idx`` and ``g_i = (beta/2) mean_valid((2y - 1) z)`` of that
iteration's detached logits and original labels. After the iteration this hook updates (rule of
:func:`uqseg.core.aslp_rule.aslp_update`)::

    R_i   = (1 - beta alpha_i / 2) - Acc_val     calibration mode
          = Acc_val - Acc_ref                    conservative mode (Acc_ref: best Acc_val so far)
    alpha_i <- clip(alpha_i + eta (g_i + lam min(R_i, 0)), 0, alpha_max)

``Acc_val`` is the pixel accuracy (foreground probability > 0.5, valid pixels pooled over the
images) of the model on the validation set named ``val_set`` (the held-out part of DUTS-TR,
'DUTS-TR-val', in the SOD configs): the ``<val_set>/PixelAcc`` result of a
:class:`~uqseg.seg.metrics.PixelAccuracyMetric` in ``val_evaluator``, read from the metrics of
every validation (``after_val_epoch``). The hook checks before training that the evaluator has
that metric and that the validation dataset holds ``val_set``.

Timeline and choices:

* iterations ``0 .. warmup_iters - 1``: no update (public code: 5 of 30 epochs; default
  ``warmup_iters=None`` -> ``round(max_iters * 5 / 30)``);
* before the first validation no ``Acc_val`` exists, so the penalty cannot be evaluated. By
  default (``update_before_val=False``) the hook makes **no update until the first validation
  has run**: the warm-up effectively lasts until ``max(warmup_iters, first validation)``. This
  is what the public code does in effect (its warm-up outlasts the first validation) and avoids
  unconstrained steps ``eta g_i`` that would push every alpha towards ``alpha_max``.
  ``update_before_val=True`` makes those penalty-free steps instead (the pure rule's
  ``acc_val=None`` behaviour);
* conservative mode: ``Acc_ref`` is the best ``Acc_val`` seen, including the current one, so
  ``R = 0`` whenever the latest validation is the best;
* an image met several times in one iteration (across ranks or within a batch) gets one update
  with the mean of its ``g`` values.

Multi-GPU: every rank holds the whole alpha vector. The per-image ``(sample_idx, g)`` of all ranks
are combined each iteration by one ``all_reduce`` of a dense ``(2, num_samples)`` float64 tensor
(sum of ``g`` and count per sample; ``16 * num_samples`` bytes, 150 kB for DUTS-TR), then every
rank applies the same update, so the alphas stay identical on every rank and equal those of one
process seeing the same images (:func:`combine_sample_updates`). ``Acc_val`` comes from the
evaluator, which gathers the metric's per-image counts across ranks, drops the samples a
distributed sampler repeats, and broadcasts the metrics to every rank. DDP's buffer broadcast
is therefore not needed (mmengine sets ``broadcast_buffers=False``) and harmless when on.

State: the alphas are a buffer of the head (in ``state_dict``, hence in every checkpoint); this
hook adds ``Acc_val``, ``Acc_ref`` and the number of validations to the checkpoint
(``checkpoint['uqseg_aslp']``) and puts them back on ``--resume``, so a resumed run continues
exactly (tested with :class:`ResumeRandomStateHook`, which restores the RNG draws of sample mode).

Logged through mmengine's message hub (and hence the logger and visualizer backends):
``train/aslp/alpha_mean``, ``train/aslp/alpha_max``, ``train/aslp/at_cap`` (share of alphas
within 1e-6 of ``alpha_max``), ``train/aslp/acc_val`` every iteration, and ``val/aslp/acc_val``
(plus ``val/aslp/acc_ref`` in conservative mode) at every validation.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop, IterBasedTrainLoop
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import HOOKS

from ...core.aslp_rule import (
    AT_CAP_TOL,
    DEFAULT_ETA,
    DEFAULT_LAMBDA,
    DEFAULT_TOTAL_EPOCHS,
    DEFAULT_WARMUP_EPOCHS,
    MODES,
    aslp_update,
    default_alpha_max,
)
from ...engine.wrapped_model import unwrap_model
from ..metrics.pixel_accuracy_metric import PixelAccuracyMetric
from ..models.heads.aslp_head import ASLPHead

KEY = 'uqseg_aslp'
ACC_KEY = 'PixelAcc'


def combine_sample_updates(idx: torch.Tensor, g: torch.Tensor, num_samples: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge per-image gradients of all ranks: ``(seen, g_mean)``, both of shape (num_samples,).

    ``idx`` (long) and ``g`` (float) are this rank's samples of the iteration (possibly empty).
    ``seen[i]`` is True if some rank met sample i; ``g_mean[i]`` is the mean of its g values
    (float64). One ``all_reduce`` (sum) of a dense ``(2, num_samples)`` tensor on ``g``'s device;
    outside a process group it is a local scatter. The result is identical on every rank and, for
    images met once per iteration, bitwise equal to the single-process result.
    """
    if idx.numel() != g.numel():
        raise ValueError(f'idx has {idx.numel()} entries but g has {g.numel()}')
    acc = torch.zeros(2, num_samples, dtype=torch.float64, device=g.device)
    if idx.numel():
        idx = idx.to(g.device)
        acc[0].index_add_(0, idx, g.to(torch.float64))
        acc[1].index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))
    if dist.get_world_size() > 1:
        dist.all_reduce(acc, op='sum')
    seen = acc[1] > 0
    return seen, acc[0] / acc[1].clamp(min=1.0)


def num_train_samples(dataset) -> int:
    """Number of distinct ``sample_idx`` values of a train dataset (RepeatDataset-aware)."""
    name = type(dataset).__name__
    if name in ('RepeatDataset', 'ClassBalancedDataset'):
        return num_train_samples(dataset.dataset)
    if name == 'ConcatDataset':
        raise ValueError('ASLP: the train dataset is a ConcatDataset, whose parts all number their '
                         'samples from 0 (sample_idx), so images of different parts would share one '
                         'alpha. Train on a single dataset (one split file listing every image).')
    return len(dataset)


def dataset_set_names(dataset) -> set:
    """The ``set_name`` values of a (possibly concatenated or repeated) dataset; empty where a
    dataset does not say (then nothing can be checked before the first validation)."""
    if hasattr(dataset, 'datasets'):
        return set().union(*(dataset_set_names(d) for d in dataset.datasets))
    if hasattr(dataset, 'dataset'):
        return dataset_set_names(dataset.dataset)
    name = getattr(dataset, 'set_name', None)
    return {name} if name else set()


def packed_meta_keys(dataset) -> Optional[tuple]:
    """The ``meta_keys`` of the ``PackSegInputs`` in a dataset's pipeline (the first part's, for a
    concatenated dataset), or None where there is no such step to read."""
    if hasattr(dataset, 'datasets'):
        return packed_meta_keys(dataset.datasets[0]) if len(dataset.datasets) else None
    if hasattr(dataset, 'dataset'):
        return packed_meta_keys(dataset.dataset)
    for t in getattr(getattr(dataset, 'pipeline', None), 'transforms', []):
        if isinstance(t, PackSegInputs):
            return tuple(t.meta_keys)
    return None


@HOOKS.register_module()
class ASLPHook(Hook):
    """Apply the ASLP alpha update after every training iteration (see the module docstring).

    Args:
        mode: 'calibration' (R = 1 - beta alpha / 2 - Acc_val) or 'conservative'
            (R = Acc_val - Acc_ref).
        eta: step size (public code: 2e-3 at beta = 2, see :mod:`uqseg.core.aslp_rule`).
        lam: penalty weight lambda (public code: 2000).
        alpha_max: cap of alpha; None -> ``min(1/beta - 0.01, 1)`` (0.49 for HI), beta being the
            SCBCELoss's.
        warmup_iters: iterations without updates at the start; None -> ``round(max_iters / 6)``
            (the public code's 5 of 30 epochs).
        val_set: ``set_name`` of the validation samples that define Acc_val (the held-out split
            of the training data, 'DUTS-TR-val' in the SOD configs); None: the one set the
            validation has (an error if it has several).
        update_before_val: before the first validation, False (default) makes no update, True
            makes penalty-free steps ``eta g``.
    """

    priority = 'NORMAL'  # after RuntimeInfoHook, before LoggerHook (which prints our scalars)

    def __init__(self, mode: str = 'calibration', eta: float = DEFAULT_ETA, lam: float = DEFAULT_LAMBDA,
                 alpha_max: Optional[float] = None, warmup_iters: Optional[int] = None,
                 val_set: Optional[str] = None, update_before_val: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        self.mode = mode
        self.eta, self.lam = float(eta), float(lam)
        if not (self.eta >= 0 and math.isfinite(self.eta)):
            raise ValueError(f'eta must be finite and >= 0, got {eta!r}')
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise ValueError(f'lam must be finite and >= 0, got {lam!r}')
        if alpha_max is not None and not 0.0 <= float(alpha_max) <= 1.0:
            raise ValueError(f'alpha_max must lie in [0, 1], got {alpha_max!r}')
        self.alpha_max_cfg = None if alpha_max is None else float(alpha_max)
        if warmup_iters is not None and int(warmup_iters) < 0:
            raise ValueError(f'warmup_iters must be >= 0, got {warmup_iters!r}')
        self.warmup_iters_cfg = None if warmup_iters is None else int(warmup_iters)
        self.warmup_iters = self.warmup_iters_cfg or 0
        self.val_set = val_set
        self.update_before_val = bool(update_before_val)
        # state (checkpointed)
        self.acc_val: Optional[float] = None
        self.acc_ref: Optional[float] = None
        self.num_vals = 0
        self._loaded: Optional[dict] = None
        self._announced = False

    # ------------------------------------------------------------------------------ helpers
    @staticmethod
    def heads(runner) -> list[tuple[str, ASLPHead]]:
        """``(name, head)`` of every ASLP head of the (unwrapped) model."""
        return [(n, m) for n, m in unwrap_model(runner.model).named_modules() if isinstance(m, ASLPHead)]

    def alpha_max_of(self, head: ASLPHead) -> float:
        return default_alpha_max(head.aslp_loss.beta) if self.alpha_max_cfg is None else self.alpha_max_cfg

    def state_dict(self) -> dict:
        return dict(acc_val=self.acc_val, acc_ref=self.acc_ref, num_vals=self.num_vals)

    def load_state_dict(self, state: dict) -> None:
        self.acc_val = state.get('acc_val')
        self.acc_ref = state.get('acc_ref')
        self.num_vals = int(state.get('num_vals', 0))

    def updates_active(self, it: int) -> bool:
        """Whether iteration ``it`` (0-based) updates the alphas."""
        return it >= self.warmup_iters and (self.acc_val is not None or self.update_before_val)

    # ------------------------------------------------------------------------------ run
    def before_run(self, runner) -> None:
        if not isinstance(runner._train_loop, BaseLoop):  # val / test only: nothing to size
            return
        heads = self.heads(runner)
        if not heads:
            raise ValueError("ASLPHook: the model has no ASLP decode head; use decode_head=dict(type="
                             "'ASLPHead', head=dict(type='<your head>', ..., loss_decode=dict(type='SCBCELoss')))")
        n = num_train_samples(runner.train_dataloader.dataset)
        for _, head in heads:
            head.aslp_resize(n)
        self.check_validation(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(KEY)
        state = checkpoint.get('state_dict', {})
        for name, head in self.heads(runner):
            key = f'{name}.alpha'
            src = state.get(key)
            have = head.aslp_num_samples
            if src is None or not have or src.numel() == have:
                continue
            if getattr(runner, '_resume', False):
                raise ValueError(
                    f'ASLPHook: cannot resume: the checkpoint holds {src.numel()} alphas ({key}) but '
                    f'the training set has {have} samples, so it comes from a run on another training '
                    'set. Resume from a checkpoint of this run, or use load_from without --resume to '
                    'start with fresh alphas.')
            runner.logger.warning(
                f'ASLPHook: the checkpoint holds {src.numel()} alphas ({key}) but the training set has '
                f'{have} samples: its alphas are not loaded, training starts from init_alpha='
                f'{head.init_alpha}.')
            del state[key]

    def before_train(self, runner) -> None:
        if self.warmup_iters_cfg is None:
            self.warmup_iters = int(round(runner.max_iters * DEFAULT_WARMUP_EPOCHS / DEFAULT_TOTAL_EPOCHS))
        loaded, self._loaded = self._loaded, None
        if runner.iter > 0:  # resumed
            if loaded is None:
                runner.logger.warning('ASLPHook: the checkpoint has no ASLP validation state; Acc_val '
                                      'is unknown until the next validation')
            else:
                self.load_state_dict(loaded)
        if runner._val_loop is None and not self.update_before_val:
            raise ValueError('ASLPHook needs validation runs (val_dataloader, val_cfg, val_evaluator and '
                             'train_cfg.val_interval) to measure Acc_val on the held-out split; without '
                             'them set update_before_val=True (no accuracy penalty ever applies).')
        heads = self.heads(runner)
        desc = ', '.join(f'{name}: {h.aslp_num_samples} alphas, beta={h.aslp_loss.beta}, '
                         f'loss mode={h.aslp_loss.mode!r}, alpha_max={self.alpha_max_of(h):.4g}'
                         for name, h in heads)
        start = ('from the first validation on' if not self.update_before_val
                 else '(without accuracy penalty until the first validation)')
        loop = runner._train_loop
        if isinstance(loop, IterBasedTrainLoop) and runner._val_loop is not None:
            interval, begin = max(int(loop.val_interval), 1), max(int(loop.val_begin), 1)
            first_val = -(-begin // interval) * interval
            start += f' (first validation after iteration {first_val})'
            if first_val >= loop.max_iters and not self.update_before_val and self.acc_val is None:
                runner.logger.warning(f'ASLPHook: the first validation comes after the last iteration '
                                      f'({first_val} >= max_iters={loop.max_iters}): no alpha will be '
                                      'updated. Validate more often (train_cfg.val_interval).')
        runner.logger.info(f'ASLPHook: {self.mode} mode, eta={self.eta:g}, lambda={self.lam:g}, '
                           f'warm-up {self.warmup_iters} iterations, then updates {start}; {desc}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        it = runner.iter  # 0-based index of the iteration just run (the loop increments it after)
        active = self.updates_active(it)
        if active and not self._announced:
            self._announced = True
            runner.logger.info(f'ASLPHook: first alpha update at iteration {it + 1}'
                               f' (Acc_val={self.acc_val})')
        hub = runner.message_hub
        for _, head in self.heads(runner):
            pending = head.aslp_pop()
            alpha = head.alpha
            alpha_max = self.alpha_max_of(head)
            if active:
                if pending is None:
                    idx = torch.zeros(0, dtype=torch.long, device=alpha.device)
                    g = torch.zeros(0, dtype=torch.float64, device=alpha.device)
                else:
                    idx, g = pending
                seen, g_mean = combine_sample_updates(idx, g, alpha.numel())
                sel = seen.nonzero().squeeze(1)
                if sel.numel():
                    new = aslp_update(alpha[sel].double(), g_mean[sel], self.acc_val, beta=head.aslp_loss.beta,
                                      eta=self.eta, lam=self.lam, alpha_max=alpha_max, mode=self.mode,
                                      acc_ref=self.acc_ref)
                    with torch.no_grad():
                        alpha[sel] = new.to(alpha.dtype)
            if alpha.numel():
                hub.update_scalar('train/aslp/alpha_mean', float(alpha.double().mean()))
                hub.update_scalar('train/aslp/alpha_max', float(alpha.max()))
                hub.update_scalar('train/aslp/at_cap',
                                  float((alpha.double() >= alpha_max - AT_CAP_TOL).double().mean()))
        if self.acc_val is not None:
            hub.update_scalar('train/aslp/acc_val', self.acc_val)

    # ------------------------------------------------------------------------------ validation
    def check_validation(self, runner) -> None:
        """Before training: the val evaluator has a PixelAccuracyMetric and the validation data
        hold ``val_set`` (when the dataset says its set names), so a typo fails now, not at the
        first validation."""
        loop = runner._val_loop
        if not isinstance(loop, BaseLoop):
            return
        metrics = getattr(loop.evaluator, 'metrics', [])
        if not any(isinstance(m, PixelAccuracyMetric) for m in metrics):
            raise ValueError("ASLPHook reads Acc_val from the validation metrics: add dict(type='PixelAccuracyMetric') "
                             f'to val_evaluator (it has {[type(m).__name__ for m in metrics]})')
        dataset = loop.dataloader.dataset
        packed = packed_meta_keys(dataset)
        if packed is not None and 'set_name' not in packed:
            raise ValueError("ASLPHook: the validation pipeline's PackSegInputs does not pack 'set_name' (meta_keys="
                             f"{tuple(packed)}), so every validation sample falls into the set 'all'; add "
                             "'set_name' to its meta_keys")
        names = dataset_set_names(dataset)
        if self.val_set is not None and names and self.val_set not in names:
            raise ValueError(f'ASLPHook: val_set={self.val_set!r} is not a set of the validation dataset '
                             f'(its sets: {sorted(names)}); set ASLPHook.val_set to the set_name of the '
                             'held-out training split')
        if self.val_set is None and len(names) > 1:
            raise ValueError(f'ASLPHook: the validation dataset has several sets ({sorted(names)}); name the '
                             'held-out training split with ASLPHook.val_set')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        metrics = metrics or {}
        # a metric prefix (PixelAccuracyMetric(prefix=...)) puts '<prefix>/' in front of the key
        if self.val_set is not None:
            key = f'{self.val_set}/{ACC_KEY}'
            found = [k for k in metrics if k == key or k.endswith(f'/{key}')]
        else:
            found = [k for k in metrics if k.endswith(f'/{ACC_KEY}')]
        if len(found) != 1:
            seen = sorted(k for k in metrics if k.endswith(f'/{ACC_KEY}'))
            raise ValueError(f'ASLPHook: no single Acc_val for val_set={self.val_set!r} among the validation '
                             f'metrics (accuracy keys: {seen}); add PixelAccuracyMetric to val_evaluator, pack '
                             "'set_name' in meta_keys and set ASLPHook.val_set to the held-out split's set_name")
        acc = float(metrics[found[0]])
        if not math.isfinite(acc):
            raise ValueError(f'ASLPHook: {found[0]} is {acc}: the validation had no valid pixel of that set')
        self.acc_val = acc
        self.acc_ref = self.acc_val if self.acc_ref is None else max(self.acc_ref, self.acc_val)
        self.num_vals += 1
        runner.message_hub.update_scalar('val/aslp/acc_val', self.acc_val)
        if self.mode == 'conservative':
            runner.message_hub.update_scalar('val/aslp/acc_ref', self.acc_ref)

    # ------------------------------------------------------------------------------ checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[KEY] = self.state_dict()
