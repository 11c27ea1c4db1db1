"""The package's layers, read from the import statements of every module (docs/architecture.md).

* ``uqseg.core`` imports neither mmseg, mmengine, mmcv nor mmpretrain, and no front end;
* ``uqseg.engine`` (shared mmengine layer) imports no front end and neither mmseg nor mmpretrain;
* the front ends (``uqseg.seg`` on mmseg, ``uqseg.cls`` on mmpretrain) do not import each other;
* no uqseg module imports another uqseg module inside a function (a hidden cycle).
"""
from __future__ import annotations

import ast
import os
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PKG = osp.join(REPO, 'uqseg')
OPENMMLAB = ('mmseg', 'mmengine', 'mmcv', 'mmpretrain')


def modules(sub: str = '') -> list[str]:
    root = osp.join(PKG, sub)
    out = []
    for folder, _, files in os.walk(root):
        out += [osp.join(folder, f) for f in files if f.endswith('.py')]
    return sorted(out)


def module_name(path: str) -> str:
    rel = osp.relpath(path, REPO)[:-3].replace(os.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def imports(path: str) -> list[tuple[str, int, bool]]:
    """``(absolute module name, line, inside a function)`` of every import in ``path``."""
    tree = ast.parse(open(path, encoding='utf-8').read(), filename=path)
    name = module_name(path)
    package = name if path.endswith('__init__.py') else name.rsplit('.', 1)[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split('.')
                    base = base[:len(base) - (child.level - 1)]
                    target = '.'.join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                found.append((target, child.lineno, in_function))
                if child.module is None or child.level:  # `from . import x`: x may be a module
                    found.extend((f'{target}.{a.name}', child.lineno, in_function) for a in child.names)
            visit(child, inside)

    visit(tree, False)
    return found


def _top(mod: str) -> str:
    return mod.split('.')[0]


def test_imports_are_resolved_for_relative_and_absolute_forms():
    # the reader itself: a relative import two levels up resolves to the package's parent
    path = osp.join(PKG, 'seg', 'metrics', 'pixel_calibration_metric.py')
    names = {m for m, _, _ in imports(path)}
    assert 'uqseg.core.accumulators' in names and 'mmseg.registry' in names


@pytest.mark.parametrize('path', modules('core'), ids=lambda p: osp.relpath(p, REPO))
def test_core_imports_no_openmmlab_package_and_no_front_end(path):
    bad = [(m, line) for m, line, _ in imports(path)
           if _top(m) in OPENMMLAB or m.startswith(('uqseg.seg', 'uqseg.cls', 'uqseg.compat'))
           or (m.startswith('uqseg') and not m.startswith('uqseg.core'))]
    assert not bad, f'{osp.relpath(path, REPO)} imports {bad}: the core is torch + numpy only'


@pytest.mark.parametrize('front,other,framework', [('seg', 'cls', 'mmpretrain'), ('cls', 'seg', 'mmseg')])
def test_front_ends_do_not_import_each_other(front, other, framework):
    bad = [(osp.relpath(p, REPO), m, line) for p in modules(front) for m, line, _ in imports(p)
           if m.startswith(f'uqseg.{other}') or _top(m) == framework]
    assert not bad, f'uqseg.{front} must not import uqseg.{other} or {framework}: {bad}'


@pytest.mark.parametrize('path', modules('engine'), ids=lambda p: osp.relpath(p, REPO))
def test_engine_imports_no_front_end_and_no_codebase(path):
    bad = [(m, line) for m, line, _ in imports(path)
           if _top(m) in ('mmseg', 'mmpretrain') or m.startswith(('uqseg.seg', 'uqseg.cls'))]
    assert not bad, f'{osp.relpath(path, REPO)} imports {bad}: uqseg.engine is mmengine + uqseg.core only'


def test_no_uqseg_import_inside_a_function():
    bad = [(osp.relpath(p, REPO), m, line) for p in modules() for m, line, inside in imports(p)
           if inside and _top(m) == 'uqseg']
    assert not bad, f'imports of uqseg modules inside functions (hidden cycles): {bad}'


def test_import_uqseg_registers_the_mmseg_front_end():
    from mmseg.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS

    import uqseg
    assert uqseg.seg is not None
    for registry, name in ((MODELS, 'ASLPHead'), (MODELS, 'SCBCELoss'), (METRICS, 'PixelAccuracyMetric'),
                           (METRICS, 'PixelCalibrationMetric'), (HOOKS, 'ASLPHook'), (DATASETS, 'SODDataset'),
                           (TRANSFORMS, 'LoadSaliencyMask')):
        assert registry.get(name) is not None, f'{name} is not registered in {registry.name}'


def test_core_imports_and_computes_without_any_openmmlab_package():
    """At run time too: with mmseg, mmengine, mmcv and mmpretrain unimportable, ``uqseg.core``
    imports (``import uqseg`` then registers nothing) and computes a metric."""
    import subprocess
    import sys
    code = (
        'import sys\n'
        f'for name in {OPENMMLAB!r}:\n'
        '    sys.modules[name] = None\n'
        'import torch, uqseg\n'
        'from uqseg.core import accumulators, functional, binning, scores, sc_bce, aslp_rule, plots\n'
        'ece = functional.calibration_error(torch.tensor([0.9, 0.6], dtype=torch.float64), torch.tensor([1.0, 0.0]))\n'
        'assert abs(ece - 0.35) < 1e-12, ece\n'
        'assert not hasattr(uqseg, "seg")\n'
        'loaded = [m for m in sys.modules if m.split(".")[0] in %r and sys.modules[m] is not None]\n'
        'assert not loaded, loaded\n'
        'print("core ok")\n' % (OPENMMLAB,))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and 'core ok' in out.stdout, out.stderr[-2000:]
