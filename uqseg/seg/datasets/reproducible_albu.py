"""mmseg's ``Albu`` transform made reproducible under mmengine's seeding."""
from __future__ import annotations

import numpy as np
from mmseg.datasets.transforms import Albu
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ReproducibleAlbu(Albu):
    """``Albu`` whose albumentations pipeline draws its randomness from numpy's global RNG.

    albumentations >= 2 gives every ``Compose`` its own generator, seeded from OS entropy unless
    a seed is passed, and ignores ``np.random.seed``. Under mmseg's ``Albu`` that makes a run
    irreproducible whatever ``randomness.seed`` says, and since dataloader workers are forked
    with a copy of that generator, every worker applies the same sequence of augmentations.

    Here each call first reseeds the albumentations pipeline with a number drawn from
    ``np.random``, which mmengine seeds per run, rank and worker (``randomness.seed``,
    ``worker_init_fn``). Augmentations then follow the run's seed, differ between workers, and
    are replayed exactly when ``--resume`` skips the batches already trained on.
    Arguments are those of :class:`mmseg.datasets.transforms.Albu`.
    """

    def transform(self, results: dict) -> dict:
        self.aug.set_random_seed(int(np.random.randint(0, 2**31 - 1)))
        return super().transform(results)
