"""Fixtures of the classification front end's tests."""
import pytest


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """Build components as mmpretrain configs do (default_scope='mmpretrain'), inside each test; the
    suite's mmseg scope (tests/conftest.py) is restored afterwards."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield
