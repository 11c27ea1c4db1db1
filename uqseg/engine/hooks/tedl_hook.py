"""TEDL's two stages: cross-entropy, then EDL with ELU evidence from a schedule point."""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...core.edl_loss import EDLLoss
from ...core.output_layers import EDLLayer
from ..wrapped_model import unwrap_model

__all__ = ['TEDLHook']


@HOOKS.register_module()
class TEDLHook(Hook):
    """Two-stage evidential learning (Li et al., 2022): the first ``switch_iter`` iterations (or
    ``switch_epoch`` epochs) train the plain logits ``f`` of the head's :class:`EDLLayer` with
    cross-entropy (its ``evidential`` buffer off), the rest train ``log alpha`` with the
    :class:`EDLLoss` (buffer on). Conventions: ``docs/edl.md#tedl``.

    The stage follows the iteration: before every training iteration the hook sets it from
    ``runner.iter`` (so a run resumed after the switch stays in stage 2, and one resumed before
    it switches at the same iteration), logs the switch, and logs ``train/tedl_stage``. The EDL
    loss's KL annealing starts at the switch (the hook sets its ``kl_anneal_start`` to it,
    replacing a configured value). The layer's buffer is saved
    in checkpoints, so testing a checkpoint reads its channels as the stage that wrote it; a
    plain cross-entropy checkpoint (``load_from``) starts stage 2 with ``switch_iter=0``.

    Args:
        switch_iter / switch_epoch: the schedule point (exactly one; an epoch is
            ``len(train_dataloader)`` iterations).
        freeze_backbone: in stage 2, stop the backbone's gradients and keep the whole backbone in
            eval mode (normalisation statistics and dropout frozen; the paper freezes nothing; off
            by default). Under DDP this needs
            ``model_wrapper_cfg=dict(type='MMDistributedDataParallel', find_unused_parameters=True)``.
    """

    priority = 'NORMAL'

    def __init__(self, switch_iter: Optional[int] = None, switch_epoch: Optional[int] = None,
                 freeze_backbone: bool = False) -> None:
        if (switch_iter is None) == (switch_epoch is None):
            raise ValueError(f'TEDLHook needs exactly one of switch_iter / switch_epoch, got '
                             f'switch_iter={switch_iter!r}, switch_epoch={switch_epoch!r}')
        for key, v in (('switch_iter', switch_iter), ('switch_epoch', switch_epoch)):
            if v is not None and (isinstance(v, bool) or int(v) != v or v < 0):
                raise ValueError(f'TEDLHook: {key} must be an int >= 0, got {v!r}')
        self.switch_iter, self.switch_epoch = switch_iter, switch_epoch
        self.freeze_backbone = bool(freeze_backbone)
        self.switch_at: Optional[int] = None

    def _parts(self, runner) -> tuple[EDLLayer, EDLLoss]:
        """The model's one EDL output layer and one EDL loss, wherever the front end keeps them (an
        mmseg ``OutputLayerHead``'s ``conv_seg`` and ``losses``, an mmpretrain ``OutputLayerClsHead``'s
        ``fc`` and ``loss_module``)."""
        model = unwrap_model(runner.model)
        layers = [m for m in model.modules() if isinstance(m, EDLLayer)]
        losses = [m for m in model.modules() if isinstance(m, EDLLoss)]
        if len(layers) != 1 or len(losses) != 1:
            raise TypeError("TEDLHook needs a model with one EDL output layer and one EDLLoss: in mmseg "
                            "decode_head=dict(type='OutputLayerHead', head=dict(...), "
                            "output_layer=dict(type='EDLLayer', evidence='elu'), "
                            "loss_decode=dict(type='EDLLoss', ...)), in mmpretrain "
                            "head=dict(type='OutputLayerClsHead', ..., "
                            "output_layer=dict(type='EDLLayer', evidence='elu'), loss=dict(type='EDLLoss', ...)); "
                            f'the {type(model).__name__} has {len(layers)} EDL layer(s) and {len(losses)} EDLLoss(es)')
        return layers[0], losses[0]

    def before_train(self, runner) -> None:
        layer, loss = self._parts(runner)
        if self.switch_iter is not None:
            self.switch_at = int(self.switch_iter)
        else:
            self.switch_at = int(self.switch_epoch) * len(runner.train_dataloader)
        loss.kl_anneal_start = self.switch_at
        if layer.evidence != 'elu':
            runner.logger.warning(f"TEDLHook: the EDLLayer uses evidence={layer.evidence!r}; TEDL's stage 2 uses "
                                  "'elu' (ELU + 1)")
        layer.stage_scheduled = True
        self._apply(runner, layer, first=True)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._apply(runner, self._parts(runner)[0])

    def _apply(self, runner, layer: EDLLayer, first: bool = False) -> None:
        stage2 = runner.iter >= self.switch_at
        if stage2 != (layer.output_kind == 'log_alpha') or first:
            layer.set_evidential(stage2)
            if stage2:
                runner.logger.info(f'TEDL: stage 2 (EDL loss, {layer.evidence} evidence) from iteration '
                                   f'{runner.iter + 1}'
                                   + (' (resumed)' if first and runner.iter else '')
                                   + (', backbone frozen' if self.freeze_backbone else ''))
            elif first:
                runner.logger.info(f'TEDL: stage 1 (cross-entropy) until iteration {self.switch_at}, '
                                   f'then EDL with {layer.evidence} evidence')
        if stage2 and self.freeze_backbone:
            backbone = unwrap_model(runner.model).backbone
            backbone.requires_grad_(False)
            backbone.eval()
        runner.message_hub.update_scalar('train/tedl_stage', 2 if stage2 else 1)
