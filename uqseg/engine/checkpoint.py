"""Safe and strict checkpoint loading, for every uqseg tool, hook and Runner (``docs/checkpoints.md``).

**Safe.** A checkpoint is unpickled with ``torch.load(weights_only=True)`` and, for that load only,
an allow-list of exactly the types that mmengine's and uqseg's checkpoints hold besides tensors
(:data:`CHECKPOINT_GLOBALS`: the message hub's ``HistoryBuffer`` with its four default statistics,
numpy arrays and scalars of numeric / bool dtypes). Anything else (code a crafted pickle would run)
is refused with an :class:`UnsafeCheckpointError` naming the file, the refused types and the
explicit opt-in for a file the user trusts (``--trust-checkpoint``, ``trust=True``: then
``weights_only=False``). Nothing changes process-wide: the allow-list is added for the load and
taken away after it (torch's ``safe_globals``), and mmengine's own loader is left as it is.

**Strict.** :func:`load_state_dict_checked` loads a checkpoint's ``state_dict`` (mmengine's key
handling: ``state_dict`` or the whole dict, ``revise_keys`` default ``^module\\.`` stripped, model
wrappers and TTA models unwrapped) and, unless ``strict=False`` (``--partial-load``), raises a
:class:`CheckpointMismatchError` naming the missing, unexpected and mis-shaped keys (first few and
counts): a tool never scores a model it did not load completely.

:class:`SafeCheckpointRunner` is mmengine's ``Runner`` whose ``load_checkpoint`` (``load_from``, and
``resume``, which goes through it) does both; ``uqseg train`` and ``uqseg test`` run it, and
a config may name it (``runner_type='SafeCheckpointRunner'``).

Older torch: without ``torch.serialization.safe_globals`` (torch < 2.5) the weights-only
unpickler takes no allow-list, so a local file is unpickled by :data:`ALLOW_LIST_PICKLE`, a
``pickle_module`` whose ``find_class`` resolves only torch's weights-only globals and
:data:`CHECKPOINT_GLOBALS`: the same refusal, the same opt-in. A config's own ``runner_type``
(not :class:`SafeCheckpointRunner`) loads with mmengine's loader, safe only on torch >= 2.6.
"""
from __future__ import annotations

import _compat_pickle
import argparse
import codecs
import contextlib
import logging
import os.path as osp
import pickle
import re
import types
from collections import OrderedDict
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model import BaseTTAModel
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

from ..core.temperature import TEMPERATURE_KEY
from .wrapped_model import unwrap_model

__all__ = ['TRUST_OPTION', 'PARTIAL_OPTION', 'HAS_ALLOW_LIST', 'CHECKPOINT_GLOBALS', 'MAX_LISTED', 'ALLOW_LIST_PICKLE',
           'UnsafeCheckpointError', 'CheckpointMismatchError', 'checkpoint_safe_globals', 'load_checkpoint_file',
           'load_state_dict_checked', 'load_checkpoint_strict', 'add_checkpoint_arguments', 'SafeCheckpointRunner']

#: the tools' explicit opt-in for a checkpoint outside the allow-list (a file the user trusts)
TRUST_OPTION = '--trust-checkpoint'
#: the tools' explicit opt-in for loading a checkpoint that does not fit the model
PARTIAL_OPTION = '--partial-load'

#: whether this torch scopes an allow-list to a load (``torch.serialization.safe_globals``, torch >= 2.5)
HAS_ALLOW_LIST = hasattr(torch.serialization, 'safe_globals')

#: mmengine's ``MessageHub`` keeps ``HistoryBuffer`` objects whose pickled state holds these methods
_HISTORY_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_method(owner, name: str):
    """``getattr`` as a checkpoint may use it: only ``HistoryBuffer.<min|max|current|mean>`` (how
    pickle spells the methods a ``HistoryBuffer``'s state holds); anything else is refused."""
    if owner is HistoryBuffer and name in _HISTORY_STATISTICS:
        return getattr(owner, name)
    what = getattr(owner, '__qualname__', type(owner).__name__)
    raise pickle.UnpicklingError(f'Unsupported global: GLOBAL getattr({what}, {name!r}) (getattr only of '
                                 f'HistoryBuffer.{"/".join(_HISTORY_STATISTICS)})')


def _numpy_globals() -> list:
    """numpy arrays and scalars of numeric and bool dtypes (no object arrays), under the module
    paths numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) pickle them with."""
    core = getattr(np, '_core', None) or np.core
    multiarray = core.multiarray
    out = [np.ndarray, np.dtype]
    for mod in ('numpy.core', 'numpy._core'):
        out += [(multiarray._reconstruct, f'{mod}.multiarray._reconstruct'),
                (multiarray.scalar, f'{mod}.multiarray.scalar')]
    kinds = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
             np.float32, np.float64)
    out += list(dict.fromkeys(type(np.dtype(k)) for k in kinds))  # numpy.dtypes.Float64DType, ... (numpy >= 1.25)
    return out


#: what a checkpoint of mmengine and uqseg holds besides tensors and builtins (torch's own
#: allow-list): the message hub's ``HistoryBuffer`` (its statistics pickled through ``getattr``,
#: allowed only for those), numpy arrays and scalars (RNG states, the buffers' histories)
CHECKPOINT_GLOBALS = [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')] + _numpy_globals()


@contextlib.contextmanager
def checkpoint_safe_globals(extra: Iterable = ()):
    """torch's weights-only unpickler also accepts :data:`CHECKPOINT_GLOBALS` (and ``extra``) inside
    the ``with`` block; entries the process had already allowed stay allowed after it. A no-op on
    torch < 2.5 (no ``safe_globals``)."""
    if not HAS_ALLOW_LIST:
        yield
        return
    before = torch.serialization.get_safe_globals()
    added = [g for g in [*CHECKPOINT_GLOBALS, *extra] if g not in before]
    with torch.serialization.safe_globals(added):
        yield


def _global_name(entry) -> tuple:
    """``(object, 'module.name')`` of an allow-list entry (an object, or an ``(object, name)`` pair)."""
    if isinstance(entry, tuple):
        return entry
    return entry, f'{entry.__module__}.{entry.__qualname__}'


class _AllowListUnpickler(pickle.Unpickler):
    """An unpickler that resolves only torch's weights-only globals and :data:`CHECKPOINT_GLOBALS`
    (the allow-list for torch < 2.5, which cannot add to its own weights-only unpickler's)."""

    def find_class(self, module: str, name: str):
        # protocol 2 (torch.save's) writes Python 2 names (__builtin__.getattr): map them as pickle does
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        allowed = dict(torch._weights_only_unpickler._get_allowed_globals())
        allowed['_codecs.encode'] = codecs.encode  # protocol 2 writes bytes (numpy arrays' data) through it
        allowed.update({key: obj for obj, key in map(_global_name, CHECKPOINT_GLOBALS)})
        key = f'{module}.{name}'
        if key not in allowed:
            raise pickle.UnpicklingError(f'Unsupported global: GLOBAL {key} was not an allowed global')
        return allowed[key]


#: a ``pickle_module`` for ``torch.load`` that unpickles with :class:`_AllowListUnpickler`
ALLOW_LIST_PICKLE = types.SimpleNamespace(
    __name__='uqseg_allow_list_pickle', Unpickler=_AllowListUnpickler,
    load=lambda file, **kwargs: _AllowListUnpickler(file, **kwargs).load())


def _load_allow_listed(path: str, map_location):
    """``torch.load`` of a local file with the allow-list: torch's weights-only unpickler with
    :func:`checkpoint_safe_globals` (torch >= 2.5), else :data:`ALLOW_LIST_PICKLE`."""
    if HAS_ALLOW_LIST:
        with checkpoint_safe_globals():
            return torch.load(path, map_location=map_location, weights_only=True)
    return torch.load(path, map_location=map_location, weights_only=False, pickle_module=ALLOW_LIST_PICKLE)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a type outside the allow-list (``filename``, ``types``)."""

    def __init__(self, filename: str, types: Sequence[str], opt_in: str):
        self.filename, self.types = filename, list(types)
        shown = ', '.join(self.types) if self.types else 'a type torch does not name'
        super().__init__(
            f'{filename}: refused to load: the checkpoint holds {shown}, outside the types a uqseg / mmengine '
            f'checkpoint holds (uqseg.engine.checkpoint.CHECKPOINT_GLOBALS); unpickling it could run code from the '
            f'file. If you trust this file (e.g. you wrote it), pass {opt_in} to load it with weights_only=False.')


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model: ``missing``, ``unexpected``, ``mismatched`` keys."""

    def __init__(self, message: str, missing: list, unexpected: list, mismatched: list):
        super().__init__(message)
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched


def _refused_types(path: Optional[str], exc: BaseException) -> list:
    """The types a weights-only load refused: torch's message (the one it stopped at) and, for a
    zip checkpoint, every global of its pickle outside the allow-lists."""
    found = re.findall(r'GLOBAL (\S+) was not an allowed global', str(exc))
    found += re.findall(r"but got <class '([^']+)'>", str(exc))
    found += re.findall(r'Unsupported global: GLOBAL (getattr\([^)]*\))', str(exc))
    if path is not None and hasattr(torch.serialization, 'get_unsafe_globals_in_checkpoint'):
        try:
            found += torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # a legacy (non-zip) file: torch's message only
            pass
    return sorted(set(found))


def load_checkpoint_file(filename: str, map_location='cpu', trust: bool = False, opt_in: str = TRUST_OPTION):
    """The object in a checkpoint: a local file with ``torch.load(weights_only=True)`` and the
    allow-list (:func:`checkpoint_safe_globals`); another scheme (``https://``, ``open-mmlab://``...)
    through mmengine's loader for it, with the allow-list. A type outside it is an
    :class:`UnsafeCheckpointError` naming ``opt_in``; ``trust=True`` loads a local file with
    ``weights_only=False`` (for files the user trusts). On torch < 2.5, whose weights-only unpickler
    takes no allow-list, a local file is unpickled by :data:`ALLOW_LIST_PICKLE` (torch's weights-only
    globals and the same allow-list); a remote one by mmengine's loader as it is."""
    local = '://' not in filename
    path = osp.expanduser(filename) if local else None
    if local and not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    if local and trust:
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        if local:
            return _load_allow_listed(path, map_location)
        with checkpoint_safe_globals():
            return CheckpointLoader.load_checkpoint(filename, map_location)
    except pickle.UnpicklingError as exc:
        hint = opt_in if local else f'{opt_in} with a local copy of the file'
        raise UnsafeCheckpointError(filename, _refused_types(path, exc), hint) from exc


def _unwrap(model):
    """The model inside DDP-like wrappers and TTA models (as mmengine's ``load_state_dict`` does)."""
    model = unwrap_model(model)
    while isinstance(model, BaseTTAModel):
        model = unwrap_model(model.module)
    return model


#: keys listed in a mismatch error (then a count)
MAX_LISTED = 5

_SIZE_MISMATCH = re.compile(r'size mismatch for (\S+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from '
                            r'checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)')


def _listed(keys: list) -> str:
    more = f' ... ({len(keys)} in all)' if len(keys) > MAX_LISTED else ''
    return ', '.join(map(str, keys[:MAX_LISTED])) + more


def _mismatch(error: str) -> tuple:
    """``(key, 'size mismatch for <key>: <shape> in the checkpoint, <shape> in the model')`` from
    one of torch's ``_load_from_state_dict`` errors (another error: ``(None, the error)``)."""
    m = _SIZE_MISMATCH.search(error)
    if m is None:
        return None, error.strip()
    key, ckpt, own = m.groups()
    return key, f'size mismatch for {key}: {ckpt} in the checkpoint, {own} in the model'


def load_state_dict_checked(model, checkpoint: dict, source: str, strict: bool = True,
                            revise_keys=((r'^module\.', ''),), ignore_keys: Sequence[str] = (),
                            opt_in: Optional[str] = PARTIAL_OPTION, owner: str = '', what: str = '',
                            hint: str = '') -> tuple:
    """Load ``checkpoint``'s ``state_dict`` (or ``checkpoint`` itself) into ``model``; return
    ``(missing, unexpected, mis-shaped)`` keys.

    Keys as mmengine's ``_load_checkpoint_to_model`` reads them (``revise_keys`` substitutions,
    then ``ignore_keys`` dropped), loaded module by module as ``torch.nn.Module.load_state_dict``
    does, so each module's own ``_load_from_state_dict`` runs (a calibrated ``temperature``, ASLP
    alphas adopted by an unsized head, a linear EDL weight). A missing key (BatchNorm's
    ``num_batches_tracked`` aside, as in mmengine), an unexpected one or a mis-shaped one (not
    loaded) is a :class:`CheckpointMismatchError` naming them (first :data:`MAX_LISTED` and the
    count), ``source`` (the file), ``owner`` / ``what`` (who loads, into what) and ``opt_in``
    (the partial-load option, if any); with ``strict=False`` the same text as a warning, the keys
    that fit loaded."""
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(f'{source}: not a checkpoint (a {type(checkpoint).__name__}, no state_dict)',
                                      [], [], [])
    state = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f'{source}: no state_dict in the checkpoint (a {type(state).__name__})',
                                      [], [], [])
    metadata = getattr(state, '_metadata', None)
    state = OrderedDict(state)  # a copy: ignore_keys must not drop keys from the caller's checkpoint
    for pattern, repl in revise_keys:
        state = OrderedDict((re.sub(pattern, repl, k), v) for k, v in state.items())
    for key in ignore_keys:
        state.pop(key, None)
    if metadata is not None:
        state._metadata = metadata
    target = _unwrap(model)
    missing, unexpected, errors = [], [], []

    def load(module, local_state: dict, prefix: str = '') -> None:  # torch's Module.load_state_dict, errors kept
        local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
        module._load_from_state_dict(local_state, prefix, local_metadata, True, missing, unexpected, errors)
        for name, child in module._modules.items():
            if child is not None:
                child_prefix = f'{prefix}{name}.'
                load(child, {k: v for k, v in local_state.items() if k.startswith(child_prefix)}, child_prefix)
        incompatible = torch.nn.modules.module._IncompatibleKeys(missing, unexpected)
        for hook in module._load_state_dict_post_hooks.values():
            hook(module, incompatible)

    load(target, state)
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    shaped = [_mismatch(str(e)) for e in errors]
    mismatched = [k for k, _ in shaped if k is not None]
    if not (missing or unexpected or shaped):
        return missing, unexpected, mismatched
    parts = [text for _, text in shaped[:MAX_LISTED]]
    if len(shaped) > MAX_LISTED:
        parts[-1] += f' ... ({len(shaped)} in all)'
    parts += [f'{name} keys: {_listed(keys)}' for name, keys in (('missing', missing), ('unexpected', unexpected))
              if keys]
    if TEMPERATURE_KEY in unexpected:
        parts.append(f'({TEMPERATURE_KEY!r}: a calibrated checkpoint; load it into a temperature-scaled model)')
    message = (f'{owner}: ' if owner else '') + f'{source} does not fit {what or type(target).__name__}: ' \
        + '; '.join(parts) + hint
    if strict:
        tail = f', or pass {opt_in} to load the keys that fit' if opt_in else ''
        raise CheckpointMismatchError(f'{message}. The model would run with weights it did not load: check that the '
                                      f'config is the checkpoint\'s{tail}', missing, unexpected, mismatched)
    print_log(f'{message} (loaded the keys that fit; the others keep their initial values)', logger='current',
              level=logging.WARNING)
    return missing, unexpected, mismatched


def load_checkpoint_strict(model, filename: str, map_location='cpu', strict: bool = True, trust: bool = False,
                           ignore_keys: Sequence[str] = (), revise_keys=((r'^module\.', ''),), owner: str = '',
                           what: str = '', hint: str = '', trust_option: str = TRUST_OPTION,
                           partial_option: Optional[str] = PARTIAL_OPTION) -> dict:
    """:func:`load_checkpoint_file` then :func:`load_state_dict_checked` (the file as ``source``);
    the checkpoint dict. What the tools and ``CheckpointTeacherHook`` load models with."""
    checkpoint = load_checkpoint_file(filename, map_location, trust=trust, opt_in=trust_option)
    load_state_dict_checked(model, checkpoint, filename, strict=strict, revise_keys=revise_keys,
                            ignore_keys=ignore_keys, opt_in=partial_option, owner=owner, what=what, hint=hint)
    return checkpoint


def add_checkpoint_arguments(parser: argparse.ArgumentParser, partial: bool = True) -> argparse.ArgumentParser:
    """A tool's ``--trust-checkpoint`` (and ``--partial-load``) options."""
    parser.add_argument(TRUST_OPTION, action='store_true',
                        help='load a checkpoint holding types outside the allow-list (weights_only=False: runs code '
                             'the file holds; only for a file you trust)')
    if partial:
        parser.add_argument(PARTIAL_OPTION, action='store_true',
                            help='load a checkpoint that does not fit the model (missing, unexpected or mis-shaped '
                                 'keys keep their initial values; a warning lists them)')
    return parser


@RUNNERS.register_module()
class SafeCheckpointRunner(Runner):
    """mmengine's ``Runner`` loading checkpoints through :func:`load_checkpoint_file` (allow-list)
    and :func:`load_state_dict_checked` (``resume``: strict; ``load_from``: strict when
    :attr:`strict_load`, else mmengine's partial load with the keys named in a warning).

    Set :attr:`trust_checkpoint` / :attr:`strict_load` on the instance (the tools' options)."""

    #: load checkpoints outside the allow-list (``--trust-checkpoint``)
    trust_checkpoint: bool = False
    #: ``load_from`` must fit the model (``uqseg test`` unless ``--partial-load``); resume always must
    strict_load: bool = False

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):  # noqa: B006 (mmengine's signature)
        """mmengine's ``Runner.load_checkpoint`` with the safe file load and the checked state-dict load."""
        checkpoint = load_checkpoint_file(filename, map_location, trust=self.trust_checkpoint)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        load_state_dict_checked(self.model, checkpoint, filename,
                                strict=bool(strict or self.strict_load or self._resume), revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
