"""uqseg's MMEngine layer: what both front ends share that needs mmengine but neither mmseg nor
mmpretrain (``docs/architecture.md``).

* :mod:`~uqseg.engine.hooks`: ``EMATeacherHook`` and ``CheckpointTeacherHook`` (LDL's online and
  offline teachers), ``TEDLHook`` (TEDL's two stages), ``CheckFiniteLossHook`` and
  ``ResumeRandomStateHook`` (bit-exact resume), registered in mmengine's root ``HOOKS``, so
  that mmseg and mmpretrain configs (whose registries are its children) find them by name;
* :mod:`~uqseg.engine.checkpoint`: safe and strict checkpoint loading (``weights_only=True`` with an
  allow-list scoped to each load; missing / unexpected / mis-shaped keys an error), and
  ``SafeCheckpointRunner``, mmengine's Runner loading that way (``docs/checkpoints.md``);
* :mod:`~uqseg.engine.ldl_student`: ``LDLStudent``, the teacher slot of both front ends' LDL models;
* :mod:`~uqseg.engine.runtime_info`: ``current_iter``, the iteration the losses' schedules follow;
* :mod:`~uqseg.engine.wrapped_model`: ``unwrap_model``, the model inside DDP wrappers.

It imports :mod:`uqseg.core` and mmengine only; the front ends import it, never the reverse.
"""
from . import checkpoint, hooks, ldl_student, runtime_info, wrapped_model
from .checkpoint import SafeCheckpointRunner
from .hooks import CheckFiniteLossHook, CheckpointTeacherHook, EMATeacherHook, ResumeRandomStateHook, TEDLHook

__all__ = ['checkpoint', 'hooks', 'ldl_student', 'runtime_info', 'wrapped_model', 'CheckFiniteLossHook',
           'CheckpointTeacherHook', 'EMATeacherHook', 'ResumeRandomStateHook', 'SafeCheckpointRunner', 'TEDLHook']
