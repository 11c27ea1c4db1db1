"""uqseg make-demo-data: the classification data refused in one line without the cls extra, and
tools/prepare_cls_data.py as the command with ``--only cls`` (its other behaviour:
tests/seg/datasets/test_shapes_demo.py, tests/tools/test_prepare_cls_data.py)."""
import os
import subprocess
import sys

import pytest

from tests.helpers.cfg import REPO
from uqseg.cli.make_demo_data import CLS_PACKAGES
from uqseg.optional import missing_message

NEEDED_BY = 'uqseg make-demo-data --only cls (the classification data)'


def _run(argv, cwd, block=None):
    """``uqseg make-demo-data`` in a fresh interpreter, with the package ``block`` made unimportable."""
    code = ('import sys\n'
            + (f'sys.modules[{block!r}] = None\n' if block else '')
            + 'from uqseg.cli import main\n'
            + f'main({argv!r})\n')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


@pytest.mark.parametrize('package', CLS_PACKAGES)
def test_cls_data_without_the_cls_extra_is_one_line(package, tmp_path):
    out = _run(['make-demo-data', '--only', 'sod', 'cls'], tmp_path, block=package)
    assert out.returncode == 1, out.stderr[-2000:]
    lines = out.stderr.splitlines()
    assert lines[0] == f'uqseg make-demo-data: error: {missing_message(package, NEEDED_BY)}'
    if package == 'mmpretrain':
        assert lines[0].endswith('pip install "uqseg[cls]"')
    assert 'Traceback' not in out.stderr
    assert not (tmp_path / 'data').exists()  # refused before the SOD demo is written


def test_prepare_cls_data_script_is_the_command_with_only_cls(tmp_path):
    script = os.path.join(REPO, 'tools', 'prepare_cls_data.py')
    out = subprocess.run([sys.executable, script, '--source', str(tmp_path / 'none'), '--no-fallback'],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 1, out.stderr[-2000:]
    first = out.stderr.splitlines()[0]
    assert first.startswith(f'uqseg make-demo-data: error: Fashion-MNIST not found: {tmp_path / "none"} lacks ')
    assert 'Traceback' not in out.stderr and os.listdir(tmp_path) == []  # no SOD / shapes demo either
