"""The model inside mmengine's wrappers (DDP, ``MMDistributedDataParallel``), for hooks and helpers
that read the segmentor's modules."""
from mmengine.model import is_model_wrapper

__all__ = ['unwrap_model']


def unwrap_model(model):
    """``model.module`` for a model wrapper, else ``model``."""
    return model.module if is_model_wrapper(model) else model
