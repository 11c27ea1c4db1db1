"""Test-time augmentation of a classifier with its views as members: mmpretrain's TTA path with the
member statistics instead of ``AverageClsScoreTTA``'s mean score.

Spelling (``uqseg test --tta`` / mmpretrain's ``tools/test.py --tta`` put the config's ``model`` in
``tta_model.module`` and run the test data through ``tta_pipeline``)::

    tta_model = dict(type='EnsembleClsTTA')
    tta_pipeline = [dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=0.0), dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='PackInputs', meta_keys=meta_keys)]])]

``test_step`` runs the wrapped classifier on each view of the batch in turn (its data
preprocessor, then ``module(inputs, mode='tensor')``: the head's raw outputs of its kind) and feeds
a :class:`~uqseg.core.member_statistics.MemberStatistics`; the predictions are
:func:`~.member_outputs.member_predictions`'s (the mean probability over views, its log as
``pred_logits``, the member maps with ``members`` = the number of views,
``default_score='mutual-information'``), filled into the first view's data samples.
"""
from __future__ import annotations

from typing import List

from mmengine.model import BaseTTAModel
from mmpretrain.registry import MODELS

from ....core.member_statistics import MemberStatistics
from ...outputs import output_kind
from .member_outputs import member_predictions

__all__ = ['EnsembleClsTTA']


@MODELS.register_module()
class EnsembleClsTTA(BaseTTAModel):
    """TTA views of a classifier as members (see the module docstring); ``module`` as ``BaseTTAModel``'s."""

    def test_step(self, data) -> List:
        if not isinstance(data, dict):
            raise TypeError(f'{type(self).__name__}: the TTA dataloader must give a dict of views (TestTimeAug then '
                            f'pseudo_collate), got {type(data).__name__}')
        views = len(data['inputs'])
        stats = MemberStatistics(dim=1)
        kind = output_kind(self.module)
        for v in range(views):
            view = self.module.data_preprocessor({key: value[v] for key, value in data.items()}, False)
            stats.update(self.module(view['inputs'], mode='tensor'), kind=kind, source=f'TTA view {v}')
        return member_predictions(stats, data['data_samples'][0])

    def merge_preds(self, data_samples_list):
        """Not used: :meth:`test_step` merges the views' raw outputs, not their data samples."""
        raise NotImplementedError(f'{type(self).__name__} merges the views in test_step')
