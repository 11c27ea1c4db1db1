"""MC dropout's two rules, shared by ``MCDropoutEncoderDecoder`` and ``MCDropoutImageClassifier``:
which modules are dropout (kept stochastic at test, everything else in eval mode) and how pass
``t`` is seeded (``seed + t`` inside ``torch.random.fork_rng``, so the passes are reproducible and
the global RNG is left as it was). Gal & Ghahramani (2016); ``docs/ensembles.md``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import List

import torch
from mmcv.cnn.bricks import DropPath
from torch import nn

__all__ = ['DROPOUT_TYPES', 'named_dropout_modules', 'dropout_modules', 'active_dropout', 'seeded',
           'check_passes']

#: The modules MC dropout keeps stochastic at test (``torch.nn``'s dropouts and mmcv's ``DropPath``).
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                 DropPath)


def named_dropout_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the dropout modules of ``model`` that drop something (``p > 0``)."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, DROPOUT_TYPES) and float(getattr(m, 'p', getattr(m, 'drop_prob', 0.0))) > 0]


def dropout_modules(model: nn.Module) -> List[nn.Module]:
    """The modules of :func:`named_dropout_modules`."""
    return [m for _, m in named_dropout_modules(model)]


@contextmanager
def active_dropout(modules: List[nn.Module]):
    """``modules`` in train mode inside the block, their modes restored after it."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.train(True)
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


@contextmanager
def seeded(seed: int, device: torch.device):
    """The CPU generator (and ``device``'s, if CUDA: the inputs' GPU, which need not be the current
    one) seeded ``seed`` inside the block, restored after it."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        yield


def check_passes(passes, seed, owner: str) -> None:
    """``ValueError`` naming ``owner`` unless ``passes`` is an int >= 2 and ``seed`` an int."""
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 2:
        raise ValueError(f'{owner}: passes={passes!r}; MC dropout needs an int passes >= 2')
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f'{owner}: seed={seed!r} must be an int')
