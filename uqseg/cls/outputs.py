"""A classifier's raw outputs over a dataloader: what ``uqseg dump-outputs`` writes and
``uqseg calibrate`` fits ``T`` on (both build the model with ``build_classifier``).

``collect_outputs`` runs each batch through ``model.data_preprocessor(data, False)`` and
``model(inputs, mode='tensor')`` under ``torch.no_grad`` (the head's scores before any softmax:
logits, an EDL layer's ``log alpha``, a DisMax layer's distance logits), keeping the labels and
each sample's metainfo ``set_name`` (``None`` where a sample has none), so the samples of the
test loop's OOD sets (``SelectivePredictionMetric(ood_sets=...)``) can be split off
(``split_ood``) exactly as the metric splits them.
"""
from __future__ import annotations

import copy
from typing import NamedTuple, Optional, Sequence

import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from ..engine.checkpoint import load_checkpoint_strict

__all__ = ['build_classifier', 'head_output_kind', 'output_kind', 'own_score', 'NO_LABEL', 'sample_label',
           'check_labelled', 'CollectedOutputs', 'collect_model_outputs', 'collect_outputs', 'ood_mask', 'split_ood',
           'config_ood_sets']


def build_classifier(cfg, checkpoint: Optional[str], source: str, tool: str, strict: bool = True,
                     trust: bool = False, ignore_keys: Sequence[str] = ()):
    """The model of an mmpretrain config (its top-level ``data_preprocessor`` merged in, as mmengine's
    Runner does), built by mmpretrain's ``MODELS`` and, with ``checkpoint``, loaded from it by
    :func:`~uqseg.engine.checkpoint.load_checkpoint_strict` (the allow-list unless ``trust``; keys
    that do not fit are an error unless ``strict=False``; ``ignore_keys`` not loaded); a config of
    another default scope is a ``ValueError`` naming ``source`` and ``tool``."""
    scope = cfg.get('default_scope') or 'mmpretrain'
    if scope != 'mmpretrain':
        raise ValueError(f'{source}: default_scope {scope!r}; {tool} runs mmpretrain classifiers')
    model_cfg = copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model))
    if cfg.get('data_preprocessor') is not None:
        pre = cfg.data_preprocessor
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(pre.to_dict() if hasattr(pre, 'to_dict') else pre))
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
        if checkpoint is not None:
            load_checkpoint_strict(model, checkpoint, map_location='cpu', strict=strict, trust=trust,
                                   ignore_keys=ignore_keys)
    return model


def head_output_kind(model) -> str:
    """What the head's scores are: its output layer's kind (``log_alpha``, ``distance_logits``) or ``logits``."""
    return getattr(getattr(getattr(model, 'head', None), 'fc', None), 'output_kind', 'logits')


def output_kind(model) -> str:
    """What ``model(inputs, mode='tensor')`` returns: the model's own ``output_kind`` where it has one
    (an ensemble, MC dropout: ``'logits'``, the log of the mean probability), else the head's."""
    return getattr(model, 'output_kind', None) or head_output_kind(model)


def own_score(model) -> Optional[str]:
    """The model's own score: its ``default_score`` where it has one (an ensemble, MC dropout:
    ``'mutual-information'``), else the head's output layer's (EDL ``vacuity``, DisMax ``MMLES``,
    IsoMax+ ``MDS``), None for a plain head."""
    return getattr(model, 'default_score', None) or \
        getattr(getattr(getattr(model, 'head', None), 'fc', None), 'default_score', None)


#: The label of a sample without one (no ``gt_label``, or the empty one ``AddSetName`` gives an unlabelled
#: OOD set's samples): allowed in the OOD sets only (:func:`check_labelled`).
NO_LABEL = -1


def sample_label(label, source: str) -> int:
    """One sample's ``gt_label`` as an int, :data:`NO_LABEL` for None or an empty label; more than one
    label is a ``ValueError`` naming ``source`` (single-label classification only)."""
    if label is None:
        return NO_LABEL
    label = torch.as_tensor(label).reshape(-1)
    if label.numel() == 0:
        return NO_LABEL
    if label.numel() != 1:
        raise ValueError(f'{source}: a data sample has {label.numel()} labels; single-label classification only')
    return int(label[0])


def check_labelled(labels: Sequence[int], set_names: Sequence, is_ood: Sequence[bool], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the set if an in-distribution sample (``is_ood`` false)
    has :data:`NO_LABEL`: only the OOD sets may be unlabelled (their labels are not used)."""
    bad = [n for y, n, o in zip(labels, set_names, is_ood) if not o and int(y) == NO_LABEL]
    if bad:
        raise ValueError(f'{source}: {len(bad)} in-distribution sample(s) have no gt_label (set {bad[0]!r}); '
                         'the in-distribution sets must be labelled, and an unlabelled OOD set must be listed in '
                         'ood_sets')


def _labels(samples, source: str) -> torch.Tensor:
    return torch.tensor([sample_label(s.get('gt_label') if isinstance(s, dict) else getattr(s, 'gt_label', None),
                                      source) for s in samples], dtype=torch.long)


def _set_names(samples) -> list:
    return [s.metainfo.get('set_name') if hasattr(s, 'metainfo') else None for s in samples]


class CollectedOutputs(NamedTuple):
    """A model's outputs over a dataloader (:func:`collect_model_outputs`): ``values`` ``(N, K)``
    float32 on the CPU, ``labels`` ``(N,)``, ``set_names`` (N,); for a model of several members (a
    ``statistics(inputs)`` method: ensemble, MC dropout) ``member_maps`` name -> ``(N,)`` float64
    (:meth:`~uqseg.core.member_statistics.MemberStatistics.maps`), ``members`` and ``member_kinds``;
    else None, 0 and ()."""
    values: torch.Tensor
    labels: torch.Tensor
    set_names: list
    member_maps: Optional[dict] = None
    members: int = 0
    member_kinds: tuple = ()


@torch.no_grad()
def collect_model_outputs(model, loader, apply_temperature: bool = False, source: str = 'the model'
                          ) -> CollectedOutputs:
    """The outputs of ``model`` over ``loader`` (:class:`CollectedOutputs`): per batch
    ``model.data_preprocessor(data, False)`` then ``model(inputs, mode='tensor')``, or for a model
    of several members its ``statistics(inputs)`` (``mean_logits()`` and the maps, one pass);
    ``apply_temperature`` divides the outputs by the model's ``T`` (``scale_logits``). An unlabelled
    sample's label is :data:`NO_LABEL` (:func:`split_ood` refuses it outside the OOD sets)."""
    members = callable(getattr(model, 'statistics', None))
    outs, labels, names, maps, count, kinds = [], [], [], {}, 0, ()
    for data in loader:
        data = model.data_preprocessor(data, False)
        if members:
            stats = model.statistics(data['inputs'])
            z = stats.mean_logits()
            for name, m in stats.maps().items():
                maps.setdefault(name, []).append(m.double().cpu())
            count, kinds = stats.count, stats.kinds
        else:
            z = model(data['inputs'], mode='tensor')
        if not isinstance(z, torch.Tensor) or z.dim() != 2:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"{source}: model(inputs, mode='tensor') returned {shape}, not (N, K) class scores; the "
                             'model needs a classification head')
        if apply_temperature:
            z = model.scale_logits(z)
        outs.append(z.float().cpu())
        labels.append(_labels(data['data_samples'], source))
        names += _set_names(data['data_samples'])
    if not outs:
        raise ValueError(f'{source}: the dataloader yielded no batch (empty dataset)')
    member_maps = {k: torch.cat(v) for k, v in maps.items()} if members else None
    return CollectedOutputs(torch.cat(outs), torch.cat(labels), names, member_maps, count, tuple(kinds))


def collect_outputs(model, loader, apply_temperature: bool = False, source: str = 'the model'
                    ) -> tuple[torch.Tensor, torch.Tensor, list]:
    """``(outputs (N, K) float32 on the CPU, labels (N,), set names (N,))`` of ``model`` over
    ``loader`` (:func:`collect_model_outputs` without the member maps)."""
    out = collect_model_outputs(model, loader, apply_temperature, source)
    return out.values, out.labels, out.set_names


def ood_mask(set_names: Sequence, ood_sets: Sequence[str], source: str) -> torch.Tensor:
    """Which samples are OOD: their ``set_name`` is one of ``ood_sets`` (bool, one per name). A named
    set without samples, or no in-distribution sample left, is a ``ValueError`` naming ``source`` and
    the sets seen. The one rule of the metric, ``dump_outputs.py`` and ``calibrate_classifier.py``."""
    seen = sorted({str(n) for n in set_names if n is not None})
    missing = [s for s in ood_sets if s not in seen]
    if missing:
        raise ValueError(f'{source}: ood_sets {missing} have no sample; the set names seen are {seen} (metainfo '
                         "set_name: give the OOD dataset set_name=..., or AddSetName in its pipeline, and "
                         "PackInputs meta_keys 'set_name')")
    is_ood = torch.tensor([n in ood_sets for n in set_names], dtype=torch.bool)
    if bool(is_ood.all()):
        raise ValueError(f'{source}: every sample is in ood_sets {sorted(ood_sets)}; the in-distribution samples '
                         'are those of the other sets')
    return is_ood


def split_ood(z: torch.Tensor, labels: torch.Tensor, set_names: list, ood_sets: Sequence[str], source: str
              ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """``(in-distribution outputs, their labels, OOD outputs or None)``, the OOD samples those of
    :func:`ood_mask`; an in-distribution sample without a label is refused (:func:`check_labelled`)."""
    is_ood = ood_mask(set_names, ood_sets, source) if ood_sets else torch.zeros(len(set_names), dtype=torch.bool)
    check_labelled(labels.tolist(), set_names, is_ood.tolist(), source)
    if not ood_sets:
        return z, labels, None
    return z[~is_ood], labels[~is_ood], z[is_ood]


def config_ood_sets(cfg) -> tuple:
    """The ``ood_sets`` of the config's ``SelectivePredictionMetric`` in ``test_evaluator`` (empty if none)."""
    evaluators = cfg.get('test_evaluator') or []
    if isinstance(evaluators, dict):
        evaluators = evaluators.get('metrics', [evaluators]) if 'type' not in evaluators else [evaluators]
    for e in evaluators:
        if isinstance(e, dict) and e.get('type') == 'SelectivePredictionMetric' and e.get('ood_sets'):
            return tuple(e['ood_sets'])
    return ()
