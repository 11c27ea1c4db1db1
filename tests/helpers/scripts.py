"""Load a script of tools/ or benchmarks/ as a module, to call its ``main(argv)`` in-process."""
import importlib.util
import os.path as osp
from types import ModuleType

from tests.helpers.cfg import REPO


def load_script(relpath: str) -> ModuleType:
    """The module of ``REPO/relpath`` (e.g. ``'tools/eval_maps.py'``), executed once per call."""
    name = 'uqseg_script_' + osp.splitext(relpath)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, relpath))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
