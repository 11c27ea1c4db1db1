"""The runner's runtime information that uqseg's losses read inside the model, where the runner is
out of reach: the training iteration from mmengine's ``MessageHub`` (the runner updates it every
iteration and restores it on resume, so schedules that follow it survive a resume), and the training
dataset's classes (what the classification heads check their ``num_classes`` against)."""
from typing import Optional

from mmengine.logging import MessageHub

__all__ = ['current_iter', 'training_classes']


def current_iter() -> int:
    """The current hub's ``iter`` (0 before the runner set one)."""
    return int(MessageHub.get_current_instance().get_info('iter', 0) or 0)


def training_classes() -> Optional[tuple]:
    """The ``classes`` of the training dataset's metainfo while a training loop runs (the hub's
    ``loop_stage`` is ``'train'``; mmengine's ``RuntimeInfoHook.before_train`` puts the dataset's
    metainfo there as ``dataset_meta``), else None (no runner, another loop, a dataset without classes)."""
    hub = MessageHub.get_current_instance()
    if hub.get_info('loop_stage') != 'train':
        return None
    classes = (hub.get_info('dataset_meta') or {}).get('classes')
    return tuple(classes) if classes else None
