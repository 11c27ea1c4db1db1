"""The ``uqseg`` command: one entry point with a subcommand per tool (``uqseg --help``).

Each subcommand is a module of this package with ``add_arguments(parser)`` (its options) and
``run(args)`` (the work, over importable functions of the package), listed in :data:`COMMANDS`.
A user's mistake (a file, key or value the command refuses: ``ValueError``, ``KeyError``,
``OSError``, a missing optional package) prints one line, ``uqseg <command>: error: <message>``,
and exits with status 1; ``--debug`` shows the traceback instead. The scripts in the repository's
``tools/`` call :func:`main` with their subcommand (``python tools/train.py CONFIG`` is
``uqseg train CONFIG``).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os.path as osp
import pickle
import sys
import warnings
from typing import NamedTuple, Optional, Sequence

from uqseg import __version__


class Command(NamedTuple):
    module: str  #: the module under ``uqseg.cli`` with ``add_arguments`` and ``run``
    summary: str  #: one line for ``uqseg --help``


#: The subcommands, in the order ``uqseg --help`` lists them.
COMMANDS: dict[str, Command] = {
    'train': Command('train', 'train a segmentor or classifier from a config (mmseg / mmpretrain tools/train.py)'),
    'test': Command('test', 'test a checkpoint: metrics, temperature, TTA, --out maps and score maps'),
    'calibrate': Command('calibrate', 'fit temperature scaling on a validation set, save a calibrated checkpoint'),
    'dump-outputs': Command('dump_outputs', "save a classifier's logits / probabilities and labels for eval-selective"),
    'eval-selective': Command('eval_selective', 'score and rank classifiers from their output files (AURC, AUROC...)'),
    'eval-maps': Command('eval_maps', 'score a folder of saliency / probability maps against ground truth'),
    'dump-alphas': Command('dump_alphas', 'the per-image ASLP smoothing factors of a checkpoint'),
    'make-demo-data': Command('make_demo_data', 'write the synthetic SOD / shapes data and the classification data'),
    'demo': Command('demo', 'the demo: train BCE and ASLP on the synthetic SOD data, test, print the table'),
    'train-members': Command('train_members', 'train the members of a deep ensemble (one per seed), write its config'),
    'compare-baselines': Command('compare_baselines', 'one model, deep ensembles, MC dropout, TTA and the methods on a '
                                 'demo: one table'),
    'configs': Command('configs', 'list the configs shipped with uqseg, print the path of one, copy them'),
}

#: The exceptions that mean "the input is wrong": one line without ``--debug`` (``UnpicklingError``:
#: a checkpoint refused by the safe loader, ``uqseg.engine.checkpoint.UnsafeCheckpointError``, or a corrupt one).
USER_ERRORS = (ValueError, KeyError, OSError, ImportError, pickle.UnpicklingError)


def debug_parent() -> argparse.ArgumentParser:
    """The option every subcommand has: ``--debug`` (the traceback of an error)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument('--debug', action='store_true',
                        help='on an error, show the full traceback instead of one line')
    return parent


def command_module(name: str):
    """The module of subcommand ``name`` (imported on use: ``uqseg --help`` imports no stack)."""
    return importlib.import_module(f'{__name__}.{COMMANDS[name].module}')


def command_parser(name: str, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of one subcommand alone (the ``tools/`` scripts' parser)."""
    module = command_module(name)
    parser = argparse.ArgumentParser(prog=prog or f'uqseg {name}', description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[debug_parent()])
    module.add_arguments(parser)
    return parser


def build_parser(name: Optional[str] = None) -> argparse.ArgumentParser:
    """``uqseg``'s parser; the subcommands' own options are added for ``name`` only (the one run)."""
    parser = argparse.ArgumentParser(
        prog='uqseg', description='Uncertainty estimation and calibration for MMSegmentation / mmpretrain.',
        epilog='"uqseg COMMAND --help" gives the options of a command.')
    parser.add_argument('--version', action='version', version=f'uqseg {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for key, command in COMMANDS.items():
        if key == name:
            module = command_module(key)
            sub = subparsers.add_parser(key, help=command.summary, description=module.__doc__,
                                        formatter_class=argparse.RawDescriptionHelpFormatter,
                                        parents=[debug_parent()])
            module.add_arguments(sub)
        else:
            subparsers.add_parser(key, help=command.summary, add_help=False)
    return parser


def error_line(exc: BaseException) -> str:
    """The one-line message of ``exc`` (``KeyError`` quotes its argument; the type when empty)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = ' '.join(text.split())
    return text or type(exc).__name__


@contextlib.contextmanager
def user_errors(prog: str, debug: bool):
    """A :data:`USER_ERRORS` exception inside: one line on stderr and exit status 1 (re-raised with ``debug``)."""
    try:
        yield
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f'{prog}: error: {error_line(exc)}', file=sys.stderr)
        print(f'{prog}: (add --debug for the traceback)', file=sys.stderr)
        raise SystemExit(1) from None


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f'warning: {message}', file=sys.stderr, flush=True)


@contextlib.contextmanager
def plain_warnings():
    """Python warnings shown as one ``warning: <message>`` line on stderr (no file:line dump)."""
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        yield


def run_command(name: str, args: argparse.Namespace, prog: str):
    """Run subcommand ``name``; a :data:`USER_ERRORS` exception becomes one line and exit status 1."""
    with user_errors(prog, getattr(args, 'debug', False)):
        return command_module(name).run(args)


def invoke(argv: Sequence[str]):
    """``uqseg *argv`` in this process: parse, run the command, return its result (tests call this)."""
    argv = list(argv)
    name = next((a for a in argv if not a.startswith('-')), None)
    with user_errors(f'uqseg {name}' if name in COMMANDS else 'uqseg', '--debug' in argv):
        parser = build_parser(name if name in COMMANDS else None)  # imports the command's module
    args = parser.parse_args(argv)
    return run_command(args.command, args, f'uqseg {args.command}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console entry point ``uqseg``: :func:`invoke` on ``sys.argv[1:]`` with Python warnings as
    one ``warning:`` line each; exit status 0 on success."""
    with plain_warnings():
        invoke(sys.argv[1:] if argv is None else argv)
    return 0


def tool_main(name: str, argv: Optional[Sequence[str]] = None):
    """``python tools/<script>.py [options]``: the same as ``uqseg <name> [options]``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    with plain_warnings():
        with user_errors(f'uqseg {name}', '--debug' in argv):
            parser = command_parser(name, prog=f'tools/{osp.basename(sys.argv[0])}')
        return run_command(name, parser.parse_args(argv), f'uqseg {name}')
