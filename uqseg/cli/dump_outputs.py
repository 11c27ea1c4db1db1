"""Run an mmpretrain classifier over a test set and write its raw outputs for ``uqseg eval-selective``.

    uqseg dump-outputs CONFIG [CHECKPOINT] --out FILE.npz|.pt [--split test|val]
        [--ood-dataset KEY|DICT|FILE.py] [--no-ood] [--apply-temperature] [--batch-size B]
        [--device cpu|cuda] [--model-name NAME] [--ood-sets SET ...] [--cfg-options KEY=VALUE ...]
        [--trust-checkpoint] [--partial-load]
    uqseg dump-outputs --torchvision NAME --weights STATE_DICT.pth --dataset-config DATASET.py
        --out FILE [--model-kwargs num_classes=10 ...] [--mean 123.675 116.28 103.53]
        [--std 58.395 57.12 57.375] [--no-to-rgb] [...]

The model is built from the config's ``model`` (with its top-level ``data_preprocessor``, as
mmengine's Runner does) by mmpretrain's ``MODELS`` under the config's default scope
(``mmpretrain``), and CHECKPOINT is loaded safely and strictly (``uqseg.engine.checkpoint``: the
allow-list, ``--trust-checkpoint``; keys that do not fit are an error, ``--partial-load``). Each
batch of the config's ``test_dataloader`` (``--split val``: ``val_dataloader``) goes through
``model.data_preprocessor(data, False)`` and ``model(inputs, mode='tensor')`` under
``torch.no_grad`` (a progress bar on stderr): the raw ``(N, K)`` outputs, before any softmax.
Their kind is the head's output layer's (``model.head.fc.output_kind``: EDL ``log_alpha``,
DisMax / IsoMax+ ``distance_logits``), ``logits`` for a plain head. The file
(``uqseg.core.output_files``) holds them with the labels (``gt_label``), the kind, its own score
(the layer's ``default_score``), the model's name (``--model-name``, default the config's or torchvision
model's name) and the dataset's class names.

OOD outputs (``ood_logits``): the samples of the loop whose metainfo ``set_name`` is one of the
OOD sets (``--ood-sets``, by default the ``ood_sets`` of the config's ``SelectivePredictionMetric``
in ``test_evaluator``: the same split as the metric's, ``uqseg.cls.outputs.split_ood``), or a
separate OOD dataset: the config's top-level ``ood_dataloader`` (a dataloader dict, e.g.
MNIST5kCSV for a Fashion-MNIST model) when it has one, or ``--ood-dataset``: a key of the
config holding a dataloader or dataset dict, a Python dict (``"dict(type='MNIST5kCSV')"`` or
``"{'type': ...}"``), or a ``.py`` config file with ``ood_dataloader`` / ``test_dataloader`` /
``dataset``. A bare dataset is read with the test dataloader's settings and, without a
``pipeline`` of its own, the test dataset's pipeline. ``--no-ood`` skips them.

Temperature: a ``TemperatureScaledImageClassifier`` scales only its predictions, so by default the
file holds its raw outputs (what ``uqseg eval-selective --fit-temperature`` expects); with
``--apply-temperature`` its ``T`` (from the config or checkpoint) divides the outputs first
(``model.scale_logits``), and ``--apply-temperature`` on a model without ``T`` is an error.

``--torchvision NAME``: any torchvision classification model with local weights (nothing is
downloaded), built as an mmpretrain ``ImageClassifier`` with backbone
``TorchvisionBackbone(NAME, weights=WEIGHTS, classifier='keep', **model_kwargs)`` and head
``ClsHead`` (the backbone's logits pass through), its data preprocessor normalising with
``--mean`` / ``--std`` (default ImageNet's, on 0-255 pixels) after BGR -> RGB (``--no-to-rgb``
leaves the channel order). DATASET.py is an mmengine config with ``test_dataloader`` (and
``val_dataloader`` / ``ood_dataloader`` as wanted) or a bare ``dataset`` dict (read in batches of
``--batch-size``, default 32).

Ensembles and MC dropout (``EnsembleClassifier``, ``MCDropoutImageClassifier`` configs, e.g.
``cls/ensemble_fmnist_demo`` without a CHECKPOINT: its members name theirs): the file holds the
log of the members' mean probability as ``logits`` (kind logits, own score mutual-information)
and the member maps (``member_scores``: mutual-information, expected-entropy, class-variance,
disagreement and the members' averaged layer scores, one value per sample, on the OOD rows too),
the number of members and their kinds, from one pass of the members over each batch
(``uqseg.cls.outputs.collect_model_outputs``), so ``uqseg eval-selective`` ranks the ensemble
beside single models.

CONFIG may be a shipped config's name (``uqseg configs list``). Refusals are one line with exit
status 1 (``--debug`` for the traceback); warnings (e.g. a checkpoint's ``T`` replacing the
config's) are ``warning: ...`` lines on stderr.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os.path as osp
import sys
import time
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.utils import track_iter_progress

import uqseg  # noqa: F401  (registers uqseg components)
from uqseg.cli import plain_warnings
from uqseg.cli.configs import find_config, read_config
from uqseg.cls.outputs import (
    build_classifier,
    collect_model_outputs,
    config_ood_sets,
    ood_mask,
    output_kind,
    own_score,
    split_ood,
)
from uqseg.core.output_files import EXTENSIONS, save_outputs
from uqseg.engine.checkpoint import add_checkpoint_arguments

SPLITS = ('test', 'val')
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument('config', nargs='?', help='mmpretrain config file or shipped config name (not with --torchvision)')
    ap.add_argument('checkpoint', nargs='?', help='checkpoint of the config (not with --torchvision; none for an '
                                                  'EnsembleClassifier config, whose members name theirs)')
    ap.add_argument('--out', required=True, help='model-outputs file to write (.npz or .pt)')
    ap.add_argument('--split', choices=SPLITS, default='test', help="the config's dataloader (default test)")
    ap.add_argument('--ood-dataset', help="OOD data: a config key, a Python dict or a .py config (default: the "
                                          "config's ood_dataloader, if any)")
    ap.add_argument('--no-ood', action='store_true', help="do not dump the config's OOD data")
    ap.add_argument('--ood-sets', nargs='*', help="set names of the loop's OOD samples (default: the ood_sets of the "
                    "config's SelectivePredictionMetric in test_evaluator)")
    ap.add_argument('--apply-temperature', action='store_true',
                    help="divide the outputs by a TemperatureScaledImageClassifier's T (default: raw outputs)")
    ap.add_argument('--batch-size', type=int, help="override the dataloaders' batch size")
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                    help='where the model runs (default cuda when available, else cpu)')
    ap.add_argument('--model-name', help='name stored in the file (default: config / torchvision name)')
    ap.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    add_checkpoint_arguments(ap)
    tv = ap.add_argument_group('any torchvision classification model with local weights')
    tv.add_argument('--torchvision', metavar='NAME', help='torchvision model name, e.g. resnet50')
    tv.add_argument('--weights', help='local state-dict file of the torchvision model')
    tv.add_argument('--dataset-config', help='config with test_dataloader (or a bare dataset dict)')
    tv.add_argument('--model-kwargs', nargs='+', action=DictAction, default={},
                    help="torchvision builder arguments, e.g. num_classes=10")
    tv.add_argument('--mean', nargs=3, type=float, default=list(IMAGENET_MEAN), help='ImageNet mean by default')
    tv.add_argument('--std', nargs=3, type=float, default=list(IMAGENET_STD), help='ImageNet std by default')
    tv.add_argument('--no-to-rgb', action='store_true', help='keep the channel order (default: BGR -> RGB)')


# ----------------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------------
def _literal(node, text: str):
    """A Python literal, where ``dict(key=value, ...)`` is allowed too (nothing is executed)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args:
        if any(k.arg is None for k in node.keywords):
            raise ValueError('**kwargs')
        return {k.arg: _literal(k.value, text) for k in node.keywords}
    if isinstance(node, ast.Dict):
        return {_literal(k, text): _literal(v, text) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e, text) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    return ast.literal_eval(node)


def parse_dict(text: str, owner: str) -> dict:
    try:
        value = _literal(ast.parse(text.strip(), mode='eval').body, text)
    except (SyntaxError, ValueError, TypeError) as e:
        raise ValueError(f'{owner} {text!r}: not a key of the config, a .py config file or a Python dict '
                         f"(e.g. \"dict(type='MNIST5kCSV')\"): {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f'{owner} {text!r}: a dataset or dataloader must be a dict, got {type(value).__name__}')
    return value


def _is_loader(d) -> bool:
    return isinstance(d, dict) and isinstance(d.get('dataset'), dict)


def loader_from(value, base_loader: dict, batch_size, owner: str) -> dict:
    """A dataloader dict from a dataloader or dataset dict; a dataset gets ``base_loader``'s
    settings and, without its own ``pipeline``, the base dataset's pipeline."""
    value = copy.deepcopy(value.to_dict() if hasattr(value, 'to_dict') else dict(value))
    if _is_loader(value):
        loader = value
    else:
        if 'type' not in value:
            raise ValueError(f'{owner}: a dataset dict needs a type, got keys {sorted(value)}')
        loader = copy.deepcopy(base_loader)
        base_ds = loader.get('dataset', {})
        if 'pipeline' not in value and 'pipeline' in base_ds:
            value['pipeline'] = copy.deepcopy(base_ds['pipeline'])
        loader['dataset'] = value
    if batch_size:
        loader['batch_size'] = batch_size
    return loader


def _plain(cfg_value) -> dict:
    return cfg_value.to_dict() if hasattr(cfg_value, 'to_dict') else copy.deepcopy(dict(cfg_value))


def split_loader(cfg, split: str, source: str, batch_size) -> dict:
    key = f'{split}_dataloader'
    value = cfg.get(key)
    if not value:
        if cfg.get('dataset'):  # a bare dataset config (--dataset-config)
            value = dict(batch_size=32, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                         dataset=_plain(cfg.dataset))
        else:
            raise ValueError(f'{source}: no {key} (nor a dataset dict) to run the model on')
    loader = _plain(value)
    if not _is_loader(loader):
        raise ValueError(f'{source}: {key} must be a dataloader dict with a dataset, got keys {sorted(loader)}')
    if batch_size:
        loader['batch_size'] = batch_size
    return loader


def ood_loader(cfg, args, base_loader: dict, source: str):
    """The OOD dataloader dict, or None (module docstring)."""
    if args.no_ood:
        if args.ood_dataset:
            raise ValueError('--no-ood and --ood-dataset contradict each other')
        return None
    spec = args.ood_dataset
    if spec is None:
        value = cfg.get('ood_dataloader')
        return None if not value else loader_from(value, base_loader, args.batch_size, f'{source}: ood_dataloader')
    owner = f'--ood-dataset {spec!r}'
    if cfg.get(spec) is not None:
        value = cfg.get(spec)
        if not isinstance(value, dict):
            raise ValueError(f'{owner}: the config key holds a {type(value).__name__}, not a dataset or dataloader')
    elif spec.endswith('.py'):
        if not osp.isfile(spec):
            raise FileNotFoundError(f'{owner}: no such config file')
        other = Config.fromfile(spec)
        key = next((k for k in ('ood_dataloader', 'test_dataloader', 'dataset') if other.get(k)), None)
        if key is None:
            raise ValueError(f'{owner}: the file defines none of ood_dataloader, test_dataloader, dataset')
        value = other[key]
    else:
        value = parse_dict(spec, '--ood-dataset')
    return loader_from(value, base_loader, args.batch_size, owner)


def torchvision_config(args) -> Config:
    """An mmpretrain config: ImageClassifier(TorchvisionBackbone(keep) + ClsHead) on DATASET.py's data."""
    missing = [f'--{k}' for k in ('weights', 'dataset_config') if not getattr(args, k)]
    if missing:
        raise ValueError(f'--torchvision {args.torchvision} needs {" and ".join(m.replace("_", "-") for m in missing)}')
    if args.config or args.checkpoint:
        raise ValueError('--torchvision builds the model itself: give no CONFIG / CHECKPOINT')
    if not osp.isfile(args.weights):
        raise FileNotFoundError(f'--weights {args.weights!r}: no such file')
    cfg = read_config(args.dataset_config)
    cfg.model = dict(
        type='ImageClassifier',
        backbone=dict(type='TorchvisionBackbone', name=args.torchvision, weights=args.weights, classifier='keep',
                      **dict(args.model_kwargs or {})),
        head=dict(type='ClsHead'),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=list(args.mean), std=list(args.std),
                               to_rgb=not args.no_to_rgb))
    cfg.data_preprocessor = None
    cfg.setdefault('default_scope', 'mmpretrain')
    return cfg


# ----------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------
def _classes(loader, k: int):
    names = getattr(getattr(loader, 'dataset', None), 'metainfo', {}).get('classes')
    return [str(c) for c in names] if names is not None and len(names) == k else None


def batches(loader, what: str):
    """``loader``'s batches with mmengine's progress bar on stderr (the printout stays on stdout)."""
    print(f'{what}: {len(loader.dataset)} samples in {len(loader)} batches', file=sys.stderr, flush=True)
    return track_iter_progress((loader, len(loader)), file=sys.stderr)


def model_config(args) -> tuple[Config, str, Optional[str], str]:
    """``(config, source for messages, checkpoint or None, model name)`` of the options."""
    if osp.splitext(args.out)[1].lower() not in EXTENSIONS:
        raise ValueError(f'--out {args.out!r}: a model-outputs file ends in .npz or .pt')
    if args.torchvision:
        return torchvision_config(args), f'torchvision {args.torchvision}', None, args.model_name or args.torchvision
    if not args.config:
        raise ValueError('give CONFIG and CHECKPOINT, or --torchvision NAME --weights FILE --dataset-config FILE')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = read_config(args.config)
    if not args.checkpoint and not is_ensemble(cfg):
        raise ValueError(f'{args.config}: give its CHECKPOINT (only an EnsembleClassifier config, whose members name '
                         'their checkpoints, needs none)')
    name = args.model_name or osp.splitext(osp.basename(args.config))[0]
    return cfg, find_config(args.config), args.checkpoint or None, name


def is_ensemble(cfg) -> bool:
    """Whether the config's model is an ``EnsembleClassifier`` (its members carry the checkpoints)."""
    model = cfg.get('model') or {}
    return isinstance(model, dict) and model.get('type') in ('EnsembleClassifier', 'mmpretrain.EnsembleClassifier')


def run(args: argparse.Namespace) -> dict:
    with plain_warnings():
        return dump(args)


def dump(args: argparse.Namespace) -> dict:
    """Build the model, run it over the split (and the OOD data), write ``--out``; a summary dict."""
    cfg, source, checkpoint, name = model_config(args)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    base = split_loader(cfg, args.split, source, args.batch_size)
    ood_cfg = ood_loader(cfg, args, base, source)
    start = time.perf_counter()
    model = build_classifier(cfg, checkpoint, source, 'uqseg dump-outputs', strict=not args.partial_load,
                             trust=args.trust_checkpoint)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        if args.apply_temperature and not callable(getattr(model, 'scale_logits', None)):
            raise ValueError(f'{source}: --apply-temperature needs a TemperatureScaledImageClassifier (a model with '
                             f'a temperature), got {type(model).__name__}')
        model = model.to(args.device).eval()
        kind = output_kind(model)
        loader = Runner.build_dataloader(base)
        what = f'{source} ({args.split} split)'
        out = collect_model_outputs(model, batches(loader, what), args.apply_temperature, what)
        z, y, set_names, maps = out.values, out.labels, out.set_names, out.member_maps
        classes = _classes(loader, z.shape[1])
        ood_sets = [] if args.no_ood else (args.ood_sets if args.ood_sets is not None else config_ood_sets(cfg))
        z, y, ood = split_ood(z, y, set_names, ood_sets, what)
        ood_maps = None
        if maps is not None and ood is not None:
            is_ood = ood_mask(set_names, ood_sets, what)
            maps, ood_maps = ({k: v[~is_ood] for k, v in maps.items()}, {k: v[is_ood] for k, v in maps.items()})
        if ood_cfg is not None:
            if ood is not None:
                raise ValueError(f'{source}: the {args.split} loop already holds the OOD set(s) {list(ood_sets)}; '
                                 'give --ood-dataset / ood_dataloader or ood_sets, not both')
            ood_loader_ = Runner.build_dataloader(ood_cfg)
            o = collect_model_outputs(model, batches(ood_loader_, f'{source} (OOD)'), args.apply_temperature,
                                      f'{source} (OOD)')
            ood, ood_maps = o.values, o.member_maps
    save_outputs(args.out, z, y, kind=kind, ood=ood, model=name, classes=classes, score=own_score(model),
                 **({} if maps is None else dict(members=out.members, member_scores=maps, ood_member_scores=ood_maps,
                                                 member_kinds=out.member_kinds)))
    t = f', T = {model.temperature.tolist()} applied' if args.apply_temperature else ''
    print(f'{name}: {z.shape[0]} {args.split} samples x {z.shape[1]} classes ({kind}{t})'
          + (f', {out.members} members with maps {list(maps)}' if maps is not None else '')
          + (f', {ood.shape[0]} OOD samples' if ood is not None else '')
          + f' in {time.perf_counter() - start:.1f} s; wrote {args.out} (score it: uqseg eval-selective {args.out})')
    return dict(out=args.out, model=name, kind=kind, n=int(z.shape[0]), num_classes=int(z.shape[1]),
                n_ood=0 if ood is None else int(ood.shape[0]), members=out.members,
                member_scores=[] if maps is None else list(maps))
