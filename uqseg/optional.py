"""The optional packages: whether one is installed, and the error that names the extra bringing it.

uqseg's front ends need the OpenMMLab stack (mmengine, mmsegmentation); the classification front
end needs mmpretrain (``pip install "uqseg[cls]"``), the SOD metrics pysodmetrics
(``pip install "uqseg[sod]"``).
"""
from __future__ import annotations

import importlib.util

#: The package each extra brings (``pyproject.toml``'s optional dependencies).
EXTRA_OF = {'mmpretrain': 'cls', 'mlxtend': 'cls', 'py_sod_metrics': 'sod'}


def installed(name: str) -> bool:
    """Whether the package ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a sys.modules entry without a spec (blocked)
        return False


def missing_message(package: str, needed_by: str) -> str:
    """``'<needed_by> needs <package>, which is not installed: pip install "uqseg[<extra>]"'``."""
    extra = EXTRA_OF.get(package)
    how = f'pip install "uqseg[{extra}]"' if extra else f'pip install {package}'
    return f'{needed_by} needs {package}, which is not installed: {how}'


def require(package: str, needed_by: str) -> None:
    """An ``ImportError`` with :func:`missing_message` when ``package`` is not installed."""
    if not installed(package):
        raise ImportError(missing_message(package, needed_by))
