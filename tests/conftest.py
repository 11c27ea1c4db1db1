"""Fixtures shared by the whole suite (each defined here once) and the ``gpu`` marker's skip."""
import os

import pytest
import torch

# albumentations >= 2 asks the network for a newer release when imported (and warns when there is
# one): no network access from the tests, and no warning line in the commands' stderr they read
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA device')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """A small copy of the demo data (same generator and layouts as `make demo`)."""
    from uqseg.seg.datasets.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('demo'))
    make_demo_data(root, n_train=20, n_val=4, n_test=6, n_test2=4, n_ood=5, seed=1)
    return root


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """A small copy of the shapes demo (same generator and layout as `uqseg make-demo-data --only shapes`),
    6 images per split."""
    from uqseg.seg.datasets.shapes_demo import make_shapes_demo
    root = str(tmp_path_factory.mktemp('demo_shapes'))
    make_shapes_demo(root, n_train=6, n_val=6, n_test=6, n_shift=6, n_ood=6, seed=1)
    return root


@pytest.fixture(scope='session', autouse=True)
def _mmseg_scope():
    """Build components as mmseg configs do (default_scope='mmseg')."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


@pytest.fixture(autouse=True)
def _threads():
    """At most two intra-op threads for every test (the CI machine has two shared cores)."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def one_thread(_threads):
    """One intra-op thread, for tests that loop over tiny tensors: there a second OpenMP thread on
    a busy 2-core machine slows each call 20-50x. Use with ``pytest.mark.usefixtures('one_thread')``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
