"""Output layers that replace a classifier's last linear map (a decode head's 1x1 ``conv_seg``, a
classification head's ``fc``) with an uncertainty-aware one.

Each layer maps ``(N, D, H, W)`` features (or ``(N, D)`` rows) to ``K`` channels that act as
log-probabilities at inference (``softmax`` of them is the predicted distribution) and says what
those channels are (:attr:`output_kind`, see :data:`uqseg.core.scores.OUTPUT_KINDS`), hence
which uncertainty scores are functions of them (:attr:`scores`). Each owns its initialisation
(:meth:`reset_parameters`), which a front end calls after its framework's own weight init.

* :class:`EDLLayer`: a 1x1 convolution / linear map to logits ``f``, output ``log alpha``
  (:mod:`.evidential`); with ``evidential=False`` the plain logits ``f`` (TEDL's stage 1);
* :class:`DisMaxLayer` / :class:`IsoMaxPlusLayer`: prototype distances
  (:mod:`.prototype_distance`), output ``L / T`` with the inference temperature ``T``.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .default_scores import DEFAULT_SCORES, default_score
from .evidential import DEFAULT_EXP_CLAMP, check_evidence, log_alpha
from .prototype_distance import dismax_logits, isomax_plus_logits, prototype_distances
from .scores import scores_of

__all__ = ['check_features', 'EDLLayer', 'PrototypeDistanceLayer', 'DisMaxLayer', 'IsoMaxPlusLayer']

Tensor = torch.Tensor


def _check_sizes(layer: str, in_channels: int, num_classes: int) -> None:
    if int(in_channels) < 1:
        raise ValueError(f'{layer}: in_channels must be >= 1, got {in_channels!r}')
    if int(num_classes) < 2:
        raise ValueError(f'{layer}: num_classes must be >= 2 (a softmax over classes), got {num_classes!r}. '
                         'A one-channel sigmoid head has no Dirichlet / class distances: give the head '
                         'out_channels=2 (num_classes=2) for a binary task')


def check_features(layer: nn.Module, x: Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(N, D, H, W)`` or ``(N, D)`` with ``D`` the layer's
    ``in_channels`` (a shape compare, no pass over the data), naming the layer, the key and both
    sizes instead of a matrix product's shape error."""
    name = type(layer).__name__
    if x.dim() not in (2, 4):
        raise ValueError(f'{name} expects (N, D, H, W) or (N, D) features, got {tuple(x.shape)}')
    if x.shape[1] != layer.in_channels:
        raise ValueError(f'{name}: in_channels={layer.in_channels} but the features have {x.shape[1]} channels '
                         f'(dim 1 of {tuple(x.shape)}); set in_channels={x.shape[1]} (the in_channels of the '
                         "mmpretrain head holding the layer, the channels of an mmseg decode head)")


class EDLLayer(nn.Module):
    """Evidential output: ``log alpha = log(act(W x + b) + 1)`` (Sensoy et al. 2018).

    ``weight`` is ``(K, D, 1, 1)`` and ``bias`` ``(K,)``, the shapes and names of a 1x1
    ``nn.Conv2d``, so a plain head's ``conv_seg.*`` checkpoint loads into it (an ``nn.Linear``
    ``(K, D)`` weight is reshaped on loading). Maps go through a 1x1 convolution, rows through
    a linear map. Initialisation as mmseg's ``conv_seg``: weight N(0, 0.01^2), bias 0.

    Args:
        in_channels, num_classes: ``D`` and ``K``.
        evidence: 'relu', 'softplus', 'exp' (clamped to ``[-exp_clamp, exp_clamp]``) or 'elu'
            (``ELU + 1``, TEDL).
        exp_clamp: clamp of 'exp' evidence (spec: 10).
        evidential: start evidential (output ``log alpha``) or plain (output ``f``; TEDL's stage
            1). Kept in the persistent buffer ``evidential`` (so a checkpoint records its
            stage); a checkpoint without it (a plain head's) leaves the configured value.
    """

    weight: Tensor

    def __init__(self, in_channels: int, num_classes: int, evidence: str = 'relu',
                 exp_clamp: float = DEFAULT_EXP_CLAMP, evidential: bool = True) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, in_channels, num_classes)
        check_evidence(evidence, exp_clamp, int(num_classes))
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.evidence, self.exp_clamp = evidence, float(exp_clamp)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.in_channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(self.num_classes))
        self.register_buffer('evidential', torch.tensor(bool(evidential)))
        self._evidential = bool(evidential)  # the buffer as a Python bool: no device sync per forward
        #: set by a schedule that switches the stage (TEDL); a front end warns when a layer trains
        #: in the cross-entropy stage without one
        self.stage_scheduled = False
        self.reset_parameters()

    @property
    def output_kind(self) -> str:
        return 'log_alpha' if self._evidential else 'logits'

    @property
    def scores(self) -> tuple[str, ...]:
        return scores_of(self.output_kind)

    @property
    def default_score(self) -> str:
        return default_score(self.output_kind)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, 0.0, 0.01)
        nn.init.zeros_(self.bias)

    def set_evidential(self, on: bool) -> None:
        self.evidential.fill_(bool(on))
        self._evidential = bool(on)

    def logits(self, x: Tensor) -> Tensor:
        """The linear logits ``f`` (before the evidence function)."""
        check_features(self, x)
        if x.dim() == 4:
            return nn.functional.conv2d(x, self.weight, self.bias)
        return nn.functional.linear(x, self.weight.flatten(1), self.bias)

    def forward(self, x: Tensor) -> Tensor:
        f = self.logits(x)
        return log_alpha(f, self.evidence, self.exp_clamp) if self._evidential else f

    def extra_repr(self) -> str:
        return f'{self.in_channels}, {self.num_classes}, evidence={self.evidence!r}, evidential={self._evidential}'

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        w = state_dict.get(prefix + 'weight')
        if isinstance(w, Tensor) and w.dim() == 2 and w.shape == self.weight.shape[:2]:
            state_dict[prefix + 'weight'] = w[:, :, None, None]  # an nn.Linear's weight
        had_flag = prefix + 'evidential' in state_dict
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if not had_flag and prefix + 'evidential' in missing_keys:  # a plain head's checkpoint
            missing_keys.remove(prefix + 'evidential')
        self._evidential = bool(self.evidential)


class PrototypeDistanceLayer(nn.Module):
    """Distances of normalised features to learnable normalised class prototypes.

    Parameters: ``prototypes`` ``(K, D)`` (init N(0, 1)) and ``distance_scale`` ``(1,)``
    (init 1, used as ``|s|``); buffer ``temperature`` (persistent, 1 unless calibrated
    post hoc). Output ``L / T`` with ``L`` the subclass's logits; training multiplies it by the
    entropic scale (``DisMaxLoss``).
    """

    logit_rule: ClassVar = staticmethod(dismax_logits)
    default_score: ClassVar[str] = DEFAULT_SCORES['distance_logits']

    def __init__(self, in_channels: int, num_classes: int, temperature: float = 1.0) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, in_channels, num_classes)
        t = float(temperature)
        if not t > 0:
            raise ValueError(f'{type(self).__name__}: temperature must be > 0, got {temperature!r}')
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.prototypes = nn.Parameter(torch.empty(self.num_classes, self.in_channels))
        self.distance_scale = nn.Parameter(torch.empty(1))
        self.register_buffer('temperature', torch.tensor(t))
        self.reset_parameters()

    output_kind: ClassVar[str] = 'distance_logits'

    @property
    def scores(self) -> tuple[str, ...]:
        return scores_of(self.output_kind)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.prototypes, 0.0, 1.0)
        nn.init.constant_(self.distance_scale, 1.0)

    def distances(self, x: Tensor) -> Tensor:
        check_features(self, x)
        return prototype_distances(x, self.prototypes, self.distance_scale, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return type(self).logit_rule(self.distances(x), dim=1) / self.temperature

    def extra_repr(self) -> str:
        return f'{self.in_channels}, {self.num_classes}, temperature={float(self.temperature):g}'


class DisMaxLayer(PrototypeDistanceLayer):
    """DisMax: logits ``-(d_j + mean_k d_k)`` (Macedo et al. 2022)."""

    logit_rule = staticmethod(dismax_logits)


class IsoMaxPlusLayer(PrototypeDistanceLayer):
    """IsoMax+: logits ``-d_j`` (Macedo & Ludermir 2021); its paper's score is MDS."""

    logit_rule = staticmethod(isomax_plus_logits)
    default_score = 'MDS'
