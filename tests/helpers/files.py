"""Checks on files the code under test writes."""
import os.path as osp

import cv2


def assert_png(path):
    """``path`` is a readable picture of some size with some content (not blank)."""
    assert osp.isfile(path) and osp.getsize(path) > 1000, path
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 1
