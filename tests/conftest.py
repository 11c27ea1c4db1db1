import os
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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
    from uqseg.datasets.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('demo'))
    make_demo_data(root, n_train=20, n_val=4, n_test=6, n_test2=4, n_ood=5, seed=1)
    return root


@pytest.fixture(scope='session', autouse=True)
def _mmseg_scope():
    """Build components as mmseg configs do (default_scope='mmseg')."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
