"""The runner's runtime information that uqseg's losses read inside the model, where the runner is
out of reach: the training iteration from mmengine's ``MessageHub`` (the runner updates it every
iteration and restores it on resume, so schedules that follow it survive a resume)."""
from mmengine.logging import MessageHub

__all__ = ['current_iter']


def current_iter() -> int:
    """The current hub's ``iter`` (0 before the runner set one)."""
    return int(MessageHub.get_current_instance().get_info('iter', 0) or 0)
