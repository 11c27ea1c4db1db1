"""uqseg's image classification front end on mmpretrain (planned: the classification issue).

It will register, in mmpretrain's registries, thin wrappers over the same core math the mmseg
front end uses (:mod:`uqseg.core`: output layers, losses, calibration and selective-prediction
accumulators), applied per image instead of per pixel. It imports :mod:`uqseg.core` and
mmpretrain, never :mod:`uqseg.seg` (``tests/test_layering.py``). See ``docs/architecture.md``.
"""
