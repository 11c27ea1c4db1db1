"""A classifier's ``num_classes`` against the data's classes: one message, naming the keys to set.

mmpretrain meets too small a ``num_classes`` deep inside (``ClsDataPreprocessor``'s one-hot targets for
batch augments, ``F.one_hot``: "Class values must be smaller than num_classes"; a loss's index error),
naming neither the key nor the data. :func:`check_num_classes` compares a head's ``num_classes`` with
the training dataset's ``metainfo['classes']`` (:func:`uqseg.engine.runtime_info.training_classes`)
and :func:`too_few_classes` says what to set when a label is out of range.
"""
from __future__ import annotations

from typing import Optional

from ...engine.runtime_info import training_classes

__all__ = ['too_few_classes', 'check_num_classes']


def _listed(classes: tuple) -> str:
    shown = ', '.join(repr(c) for c in classes[:4])
    return f'({shown}{", ..." if len(classes) > 4 else ""})'


def too_few_classes(num_classes: int, classes: Optional[tuple] = None) -> str:
    """What to set when ``num_classes`` is smaller than the data's classes (``classes`` default: the
    training dataset's, when a training loop runs)."""
    classes = training_classes() if classes is None else classes
    data = (f'the training dataset has {len(classes)} classes {_listed(classes)}' if classes
            else 'the data has more classes')
    want = len(classes) if classes else 'the number of classes'
    return (f'num_classes={num_classes} is too small: {data}; set num_classes={want} in the head '
            '(model.head.num_classes) and in model.data_preprocessor (num_classes: the one-hot targets of batch '
            'augments)')


def check_num_classes(num_classes: int, owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` if a training loop runs on a dataset with more
    ``metainfo['classes']`` than ``num_classes``."""
    classes = training_classes()
    if classes is not None and len(classes) > int(num_classes):
        raise ValueError(f'{owner}: {too_few_classes(int(num_classes), classes)}')
