"""The README's mmpretrain config example builds as written on its `mmpretrain::` base."""
import os.path as osp
import re

import torch
from mmengine.config import Config
from mmpretrain.registry import METRICS, MODELS
from mmpretrain.structures import DataSample

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO
from uqseg.core.output_layers import DisMaxLayer


def _block() -> str:
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), flags=re.S)
    found = [b for b in blocks if 'mmpretrain::' in b]
    assert len(found) == 1, f'expected one README config block on an mmpretrain:: base, found {len(found)}'
    return found[0]


def test_dismax_fpr_example_builds_and_trains_a_step(tmp_path):
    path = tmp_path / 'readme_cls.py'
    path.write_text(_block())
    cfg = Config.fromfile(str(path))
    model = MODELS.build(cfg.model)
    assert isinstance(model.head.fc, DisMaxLayer) and model.head.fc.in_channels == 512
    assert [type(a).__name__ for a in model.data_preprocessor.batch_augments.augments] == ['FPRMosaic']
    assert METRICS.build(cfg.test_evaluator).confidences[-1] == 'own'
    torch.manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8) for _ in range(4)],
                data_samples=[DataSample().set_gt_label(i % 10) for i in range(4)])
    batch = model.data_preprocessor(data, True)
    scores = torch.stack([s.gt_score for s in batch['data_samples']])
    assert torch.allclose(scores.sum(1), torch.ones(4)) and not torch.equal(scores[2:], scores[2:].round())
    loss = model(**batch, mode='loss')['loss']
    assert torch.isfinite(loss)
