"""ASLP head: any mmseg decode head plus a per-image alpha state fed to an SC-BCE loss.

Source: J. Liu et al., "Model Calibration in Dense Classification with Adaptive Label
Perturbation", ICCV 2023; uqseg's conventions: ``docs/aslp.md``.

:class:`ASLPHead` extends a decode head (:mod:`.head_wrapper`; one spelling,
``dict(type='ASLPHead', head=dict(type='UPerHead', ...), num_samples=None, init_alpha=0.0)``)
with:

* the **state**: a buffer ``alpha`` with one value per training sample, indexed by the dataset's
  ``sample_idx``. Being a persistent buffer it is part of ``state_dict()``, so mmengine
  checkpoints save it and ``--resume`` / ``load_from`` restore it with the weights; its key is
  ``decode_head.alpha`` in an ``EncoderDecoder``;
* a ``loss_by_feat`` that reads ``sample_idx`` from every sample's metainfo, gathers the batch's
  alphas and runs the head's own (unmodified) ``loss_by_feat`` with them handed to the
  :class:`~uqseg.core.sc_bce.SCBCELoss` (via :meth:`SCBCELoss.per_image_alpha`). The loss
  records the per-image ``g_i`` of the exact (resized, detached) logits and labels it received;
  the head keeps ``(sample_idx, g)`` until :class:`~uqseg.seg.hooks.ASLPHook` takes them after the
  iteration and applies the alpha update rule (identically on every rank, see the hook).

Nothing else of the head changes: the same parameters (``state_dict`` keys), ``forward``,
``predict``; binary output with ``out_channels=1`` (sigmoid) and ``threshold=0.5`` by default.

Size of the state (``num_samples``):

* ``None`` (default): unsized (0 alphas) until :class:`~uqseg.seg.hooks.ASLPHook` sizes it at
  ``before_run`` from the train dataset (``len`` of the dataset, or of the dataset inside a
  ``RepeatDataset``), or a checkpoint with alphas is loaded into it (testing, ``dump_alphas``);
* an int: fixed from the start; the hook checks it against the train dataset.

Loading a checkpoint whose ``alpha`` has another length than a sized state is an error naming
both sizes (resuming a run on another dataset); :class:`~uqseg.seg.hooks.ASLPHook` turns that into
a warning and fresh alphas for ``load_from`` (fine-tuning), and an error for ``--resume``.
A checkpoint without alphas (e.g. a BCE baseline) leaves them at ``init_alpha``.
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from mmseg.registry import MODELS

from ....core.sc_bce import SCBCELoss
from .head_wrapper import DecodeHeadWrapper

Tensor = torch.Tensor

#: How many batches of (sample_idx, g) a head keeps when no ASLPHook takes them.
MAX_PENDING = 64

MISSING_SAMPLE_IDX = (
    "ASLP needs each training sample's index: the sample metainfo has no 'sample_idx'. Add "
    "'sample_idx' to the meta_keys of PackSegInputs in the train pipeline, e.g. "
    "dict(type='PackSegInputs', meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape', "
    "'pad_shape', 'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label', 'sample_idx', "
    "'set_name')) (mmseg's default meta_keys do not include it).")


@MODELS.register_module()
class ASLPHead(DecodeHeadWrapper):
    """A decode head with ASLP's per-image alpha state (see the module docstring).

    Args:
        head: the decode head to extend, ``dict(type='UPerHead', ...)``; its ``out_channels``
            defaults to 1, ``threshold`` to 0.5 and ``num_classes`` to 2, and its
            ``loss_decode`` must hold exactly one :class:`~uqseg.core.sc_bce.SCBCELoss` (other
            losses may sit beside it and are called as usual, without alphas).
        num_samples: number of training samples (length of ``alpha``), or None to let
            :class:`~uqseg.seg.hooks.ASLPHook` size it from the train dataset.
        init_alpha: initial alpha of every sample (public code: 0).
        **overrides: entries of ``head`` (see :mod:`.head_wrapper`).
    """

    head_defaults = dict(num_classes=2, out_channels=1, threshold=0.5)

    def __init__(self, head: dict, num_samples: Optional[int] = None, init_alpha: float = 0.0,
                 **overrides) -> None:
        super().__init__(head, **overrides)
        if self.out_channels != 1:
            raise ValueError(f'{type(self).__name__}: ASLP is binary and needs out_channels=1 (one '
                             f'sigmoid channel), got out_channels={self.out_channels}')
        self.aslp_loss  # noqa: B018  (validates loss_decode)
        init_alpha = float(init_alpha)
        if not 0.0 <= init_alpha <= 1.0:
            raise ValueError(f'init_alpha must lie in [0, 1], got {init_alpha!r}')
        self.init_alpha = init_alpha
        if num_samples is not None and int(num_samples) < 1:
            raise ValueError(f'num_samples must be >= 1 or None, got {num_samples!r}')
        n = 0 if num_samples is None else int(num_samples)
        self.register_buffer('alpha', torch.full((n,), init_alpha, dtype=torch.float32))
        self._aslp_pending: list[tuple[Tensor, Tensor]] = []
        self._aslp_warned = False

    # ------------------------------------------------------------------------------ state
    @property
    def aslp_loss(self) -> SCBCELoss:
        """The SCBCELoss of ``loss_decode`` (exactly one is required)."""
        losses = self.loss_decode if isinstance(self.loss_decode, torch.nn.ModuleList) else [self.loss_decode]
        found = [m for m in losses if isinstance(m, SCBCELoss)]
        if len(found) != 1:
            raise ValueError(f'{type(self).__name__}: loss_decode must contain exactly one SCBCELoss, found '
                             f'{len(found)} among {[type(m).__name__ for m in losses]}')
        return found[0]

    @property
    def aslp_num_samples(self) -> int:
        """Length of the alpha state (0 while unsized)."""
        return self.alpha.numel()

    def aslp_resize(self, num_samples: int) -> None:
        """Size an unsized state to ``num_samples`` alphas of ``init_alpha``.

        A state already of that size is kept; one of another size is an error (the model was
        built or loaded for another training set).
        """
        num_samples = int(num_samples)
        if num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        have = self.alpha.numel()
        if have == num_samples:
            return
        if have:
            raise ValueError(
                f'{type(self).__name__}: the ASLP state holds {have} alphas but the training set has '
                f'{num_samples} samples. num_samples in the head config, or the checkpoint loaded, '
                'belongs to another training set: fix num_samples (or leave it None), or start '
                'without that checkpoint.')
        # keep the tensor object (DDP with broadcast_buffers=True holds references to buffers)
        self.alpha.data = torch.full((num_samples,), self.init_alpha, dtype=self.alpha.dtype,
                                     device=self.alpha.device)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + 'alpha'
        src = state_dict.get(key)
        if isinstance(src, Tensor) and src.dim() == 1 and src.numel() != self.alpha.numel():
            if self.alpha.numel() == 0:  # unsized (testing, dump tools): adopt the checkpoint's
                self.alpha.data = torch.empty(src.shape, dtype=self.alpha.dtype, device=self.alpha.device)
            else:
                raise ValueError(
                    f'{type(self).__name__}: the checkpoint holds {src.numel()} ASLP alphas ({key}) but '
                    f'this model has {self.alpha.numel()} (its training set): the checkpoint comes '
                    'from a run on another training set. Resume from a checkpoint of this '
                    'training set, or drop the key to start with fresh alphas.')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # ------------------------------------------------------------------------------ batches
    def aslp_sample_indices(self, batch_data_samples) -> Tensor:
        """``sample_idx`` of every sample of the batch as a long tensor on alpha's device."""
        idx = []
        for sample in batch_data_samples:
            value = sample.metainfo.get('sample_idx')
            if value is None:
                raise KeyError(MISSING_SAMPLE_IDX)
            idx.append(int(value))
        n = self.alpha.numel()
        if n == 0:
            raise RuntimeError(
                f'{type(self).__name__}: the ASLP alpha state is not sized. Add '
                "dict(type='ASLPHook') to custom_hooks (it sizes the state from the train dataset "
                'before training), or give num_samples=<len(train dataset)> in the head config.')
        out = torch.tensor(idx, dtype=torch.long, device=self.alpha.device)
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise IndexError(
                f'{type(self).__name__}: sample_idx {bad[:8]} outside the ASLP state of {n} alphas. '
                'The state is sized from the train dataset; a ConcatDataset (indices restart in '
                'every part) or a different training set than the one the state was sized for '
                'cannot be used.')
        return out

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples) -> dict:
        """The head's own ``loss_by_feat`` with the batch's alphas in the SCBCELoss.

        In training mode also keeps ``(sample_idx, g)`` of the batch for the alpha update.
        """
        idx = self.aslp_sample_indices(batch_data_samples)
        alpha = self.alpha.index_select(0, idx)
        with self.aslp_loss.per_image_alpha(alpha) as batch:
            losses = super().loss_by_feat(seg_logits, batch_data_samples)
        if batch.g is None:
            raise RuntimeError(f'{type(self).__name__}.loss_by_feat did not call its SCBCELoss '
                               '(loss_decode); ASLPHead needs a head whose loss_by_feat does')
        if self.training:
            self._aslp_pending.append((idx, batch.g.detach().float()))
            if len(self._aslp_pending) > MAX_PENDING:
                del self._aslp_pending[0]
                if not self._aslp_warned:
                    self._aslp_warned = True
                    warnings.warn(f'{type(self).__name__} trains, but no ASLPHook takes its per-image '
                                  "statistics: the alphas stay fixed. Add dict(type='ASLPHook') to "
                                  'custom_hooks.')
        return losses

    def aslp_pop(self) -> Optional[tuple[Tensor, Tensor]]:
        """Take the ``(sample_idx, g)`` kept since the last call (concatenated), or None."""
        if not self._aslp_pending:
            return None
        idx = torch.cat([i for i, _ in self._aslp_pending])
        g = torch.cat([g for _, g in self._aslp_pending])
        self._aslp_pending.clear()
        return idx, g

    def aslp_clear(self) -> None:
        """Drop the kept statistics (e.g. those of warm-up iterations)."""
        self._aslp_pending.clear()
