"""Any torchvision classification model as an mmpretrain backbone, with weights from a local file only.

The model is ``torchvision.models.get_model(name, weights=None, **model_kwargs)`` for a name of
:func:`classification_models` (torchvision's detection / segmentation / video builders are refused:
they fetch backbone weights by default). Nothing is downloaded: ``weights`` here is a local
state-dict file, loaded strictly. Its final classifier is the
last ``nn.Linear`` registered in the model (resnet / regnet / shufflenet / googlenet ``fc``, the last
``Linear`` of vgg / mobilenet / efficientnet / convnext / maxvit ``classifier``, densenet
``classifier``, vit ``heads.head``, swin ``head``), or squeezenet's final 1x1 conv
(``classifier.1``); ``classifier_module`` names another. ``classifier='drop'`` replaces it by
``nn.Identity`` and the backbone returns ``(features (N, D),)``, D = the classifier's input width
(``out_channels``), for an mmpretrain head (``LinearClsHead``, ``OutputLayerClsHead``);
``classifier='keep'`` returns ``(logits (N, num_classes),)`` for mmpretrain's plain ``ClsHead``.
"""
from __future__ import annotations

import difflib
import os.path as osp
from typing import Optional

import torch
import torchvision
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch import nn

MAX_LISTED = 10


def classification_models() -> list[str]:
    """The names of torchvision's classification models (``list_models`` of ``torchvision.models`` and its
    quantization module)."""
    return sorted(set(torchvision.models.list_models(module=torchvision.models))
                  | set(torchvision.models.list_models(module=torchvision.models.quantization)))


def _listed(keys) -> str:
    keys = sorted(keys)
    more = f' ... ({len(keys)} in all)' if len(keys) > MAX_LISTED else ''
    return ', '.join(keys[:MAX_LISTED]) + more


def find_classifier(model: nn.Module) -> str:
    """The dotted name of ``model``'s final classifier: the last ``nn.Linear`` registered in it, else (squeezenet)
    the last ``nn.Conv2d`` inside its ``classifier``; ``ValueError`` when there is none."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    convs = [name for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and name.startswith('classifier.')]
    if convs:
        return convs[-1]
    raise ValueError(f'{type(model).__name__}: no final classifier found (no nn.Linear, no nn.Conv2d in '
                     "'classifier'); pass classifier_module='<dotted name>' or classifier='keep'")


def _unwrap_state_dict(obj, path: str) -> dict[str, torch.Tensor]:
    """A state dict from a loaded file: the dict itself, or its ``'state_dict'`` / ``'model'`` entry; a
    ``'module.'`` prefix on every key (a DDP checkpoint) is removed."""
    if isinstance(obj, dict):
        for key in ('state_dict', 'model'):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f'{path}: not a state dict (expected a dict of tensors, or a checkpoint with one '
                         "under 'state_dict' or 'model')")
    if all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    return obj


@MODELS.register_module()
class TorchvisionBackbone(BaseBackbone):
    """``torchvision.models.get_model(name, weights=None, **model_kwargs)`` as an mmpretrain backbone.

    Args:
        name: a torchvision classification model (:func:`classification_models`), e.g. ``'resnet18'``.
        weights: a local file holding the model's state dict (``torch.save(model.state_dict(), path)``), or a
            checkpoint with it under ``'state_dict'`` or ``'model'``; loaded strictly (missing / unexpected keys
            and shape mismatches are a ``ValueError`` naming the file and keys), except that with
            ``classifier='drop'`` the dropped classifier's keys are ignored (so ImageNet weights serve a head
            with another number of classes). Loaded when built and again at ``init_weights`` (after an
            enclosing model's own ``init_cfg``). ``None``: torchvision's random initialisation.
        classifier: ``'drop'`` (return the features before the final classifier) or ``'keep'`` (return logits).
        classifier_module: the dotted name of the final classifier (default: :func:`find_classifier`).
        in_channels: 3 (default), or 1 for grayscale inputs (MNIST-like ``(N, 1, H, W)``), whose channel is
            repeated to the 3 channels torchvision's models take.
        init_cfg: mmengine's ``init_cfg`` (applied before the weights file).
        **model_kwargs: passed to torchvision's model builder (``num_classes``, ``dropout``, ...).
    """

    def __init__(self, name: str, weights: Optional[str] = None, classifier: str = 'drop',
                 classifier_module: Optional[str] = None, in_channels: int = 3, init_cfg=None,
                 **model_kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        if classifier not in ('drop', 'keep'):
            raise ValueError(f"TorchvisionBackbone({name!r}): classifier must be 'drop' or 'keep', got {classifier!r}")
        known = classification_models()
        if name not in known:
            if name in torchvision.models.list_models():  # detection / segmentation / video / optical flow
                raise ValueError(f'TorchvisionBackbone: {name!r} is not a torchvision classification model '
                                 '(its builder may download backbone weights); see classification_models()')
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
            hint = f'; close names: {", ".join(close)}' if close else ''
            raise ValueError(f'TorchvisionBackbone: unknown torchvision classification model {name!r}{hint} '
                             '(all: uqseg.cls.models.backbones.classification_models())')
        if 'weights' in model_kwargs or 'weights_backbone' in model_kwargs:
            raise ValueError(f'TorchvisionBackbone({name!r}): weights are a local file path (weights=...), '
                             'torchvision weight enums are not used (they download)')
        if in_channels not in (1, 3):
            raise ValueError(f'TorchvisionBackbone({name!r}): in_channels must be 1 or 3, got {in_channels!r}')
        if weights is not None and not osp.isfile(weights):
            raise FileNotFoundError(f'TorchvisionBackbone({name!r}): weights file {weights!r} does not exist')
        self.name = name
        self.weights = weights
        self.classifier = classifier
        self.in_channels = in_channels
        self.model = torchvision.models.get_model(name, weights=None, **model_kwargs)
        self.classifier_module = classifier_module or find_classifier(self.model)
        head = self._get(self.classifier_module)
        if isinstance(head, nn.Linear):
            width_in, width_out = head.in_features, head.out_features
        elif isinstance(head, nn.Conv2d):
            width_in, width_out = head.in_channels, head.out_channels
        else:
            raise ValueError(f'TorchvisionBackbone({name!r}): classifier_module {self.classifier_module!r} is a '
                             f'{type(head).__name__}, expected nn.Linear or nn.Conv2d')
        self.num_classes = width_out
        if classifier == 'drop':
            self._set(self.classifier_module, nn.Identity())
        #: the width of the returned rows: the features (drop) or the logits (keep)
        self.out_channels = width_in if classifier == 'drop' else width_out
        if weights is not None:
            self.load_weights(weights)

    def _get(self, dotted: str) -> nn.Module:
        try:
            return self.model.get_submodule(dotted)
        except AttributeError:
            raise ValueError(f'TorchvisionBackbone({self.name!r}): the model has no module {dotted!r}') from None

    def _set(self, dotted: str, module: nn.Module) -> None:
        parent, _, leaf = dotted.rpartition('.')
        setattr(self._get(parent) if parent else self.model, leaf, module)

    def load_weights(self, path: str) -> None:
        """Load a state dict file into the torchvision model (strict; see the class docstring)."""
        if not osp.isfile(path):
            raise FileNotFoundError(f'TorchvisionBackbone({self.name!r}): weights file {path!r} does not exist')
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as err:  # any unreadable file is reported with its name
            raise ValueError(f'{path}: cannot be read as a torch state dict ({type(err).__name__}: {err})') from None
        state = _unwrap_state_dict(obj, path)
        if self.classifier == 'drop':
            prefix = self.classifier_module + '.'
            state = {k: v for k, v in state.items() if not k.startswith(prefix)}
        own = self.model.state_dict()
        missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
        shapes = [f'{k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model'
                  for k in sorted(own.keys() & state.keys()) if state[k].shape != own[k].shape]
        problems = []
        if missing:
            problems.append(f'missing keys: {_listed(missing)}')
        if unexpected:
            problems.append(f'unexpected keys: {_listed(unexpected)}')
        if shapes:
            problems.append(f'shape mismatches: {"; ".join(shapes[:MAX_LISTED])}'
                            + (f' ... ({len(shapes)} in all)' if len(shapes) > MAX_LISTED else ''))
        if problems:
            raise ValueError(f'{path} does not fit torchvision {self.name!r} (classifier={self.classifier!r}): '
                             + ' | '.join(problems))
        self.model.load_state_dict(state, strict=True)

    def init_weights(self) -> None:
        """mmengine's initialisation (``init_cfg``), then the weights file again, so an enclosing model's
        ``init_cfg`` does not overwrite it."""
        super().init_weights()
        if self.weights is not None:
            self.load_weights(self.weights)

    def train(self, mode: bool = True) -> 'TorchvisionBackbone':
        """``nn.Module.train`` (mmpretrain's ``BaseBackbone.train`` returns None; this returns ``self``)."""
        super().train(mode)
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        """``(features (N, D),)`` with ``classifier='drop'``, ``(logits (N, num_classes),)`` with ``'keep'``
        (googlenet / inception's training-mode auxiliary outputs are left out)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'TorchvisionBackbone({self.name!r}): expected (N, {self.in_channels}, H, W) inputs, '
                             f'got shape {tuple(x.shape)}' + (' (set in_channels=1 for grayscale images)'
                                                              if x.ndim == 4 and x.shape[1] == 1 else ''))
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        out = self.model(x)
        if isinstance(out, tuple) and hasattr(out, '_fields'):  # GoogLeNetOutputs / InceptionOutputs
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise TypeError(f'TorchvisionBackbone({self.name!r}): the model returned {type(out).__name__}, '
                            'expected a tensor (a classification model)')
        if out.ndim != 2:
            raise ValueError(f'TorchvisionBackbone({self.name!r}): the model returned shape {tuple(out.shape)}, '
                             'expected (N, D) rows')
        return (out,)
