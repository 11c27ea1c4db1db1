"""EnsembleClsTTA: mmpretrain's TTA path (TestTimeAug views, BaseTTAModel) with the views as members:
the mean over the flipped and unflipped views and their mutual information, through the Runner."""
import pytest
import torch
from mmengine.runner import Runner

from tests.cls.members.conftest import demo_cfg
from uqseg.cls.models.classifiers import EnsembleClsTTA
from uqseg.cls.models.classifiers.member_outputs import MEMBER_SCORES_FIELD

pytestmark = pytest.mark.usefixtures('one_thread')


def test_tta_views_are_members_through_the_runner(fmnist_root, tmp_path, module_scope):
    cfg = demo_cfg('ce_fmnist_demo', fmnist_root, tmp_path)
    meta_keys = cfg.meta_keys
    cfg.tta_pipeline = [dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=0.0), dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='PackInputs', meta_keys=meta_keys)]])]
    for ds in cfg.test_dataloader.dataset.datasets:  # as `uqseg test --tta` sets it up
        ds.pipeline = cfg.tta_pipeline
    cfg.model = dict(type='EnsembleClsTTA', module=cfg.model)
    cfg.test_evaluator[0].confidences = ('max-prob', 'mutual-information', 'own')
    torch.manual_seed(0)
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model, EnsembleClsTTA)
    with torch.no_grad():
        runner.model.module.head.fc.weight.mul_(50)  # confident, so the views disagree visibly
    metrics = runner.test()
    assert {'selective/AURC[mutual-information]', 'selective/OOD-AUROC[mutual-information]'} <= set(metrics)

    data = next(iter(runner.test_dataloader))
    module = runner.model.module.eval()
    with torch.no_grad():
        preds = runner.model.test_step(data)
        x = module.data_preprocessor({k: v[0] for k, v in data.items()}, False)['inputs']
        probs = torch.stack([module(x, mode='tensor'), module(x.flip(-1), mode='tensor')]).double().softmax(2)
    mean = probs.mean(0)
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]).double(), mean, rtol=1e-5, atol=1e-6)
    ent = lambda p: -(p * p.log()).sum(-1)  # noqa: E731
    names = preds[0].metainfo['member_scores']
    mi = torch.stack([getattr(p, MEMBER_SCORES_FIELD) for p in preds])[:, names.index('mutual-information')]
    torch.testing.assert_close(mi, ent(mean) - ent(probs).mean(0), rtol=1e-6, atol=1e-9)
    assert preds[0].metainfo['members'] == 2 and float(mi.max()) > 0
