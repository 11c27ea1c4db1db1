"""MCDropoutImageClassifier: T seeded passes (reproducible, other seeds differ, the global RNG left
alone), the same state dict as ImageClassifier, the passes against a manual loop, training and testing
mc_dropout_fmnist_demo through the Runner, and the refusals (T < 2, no dropout)."""
import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from tests.cls.members.conftest import K, batch, classifier_cfg, demo_cfg
from uqseg.cls.models.classifiers import MCDropoutImageClassifier
from uqseg.cls.models.classifiers.member_outputs import MEMBER_SCORES_FIELD

pytestmark = pytest.mark.usefixtures('one_thread')

HEAD = dict(type='OutputLayerClsHead', num_classes=K, in_channels=64, dropout=0.3, loss=dict(type='CrossEntropyLoss'))


def _mc(**kw):
    torch.manual_seed(0)
    model = MODELS.build(classifier_cfg(head=HEAD, typ='MCDropoutImageClassifier', **kw))
    model.init_weights()
    with torch.no_grad():
        model.head.fc.weight.mul_(50)
    return model.eval()


def _inputs(model, n=6):
    return model.data_preprocessor(batch(n), False)['inputs']


def test_passes_are_reproducible_seeded_and_leave_the_global_rng_alone():
    model = _mc(passes=5, seed=3)
    x = _inputs(model)
    state = torch.random.get_rng_state()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b)
    model.seed = 4
    with torch.no_grad():
        c = model(x)
    assert not torch.allclose(a, c)
    assert all(not m.training for m in model.modules())  # the dropout back in eval mode too


def test_the_passes_are_the_seeded_dropout_forwards_averaged():
    model = _mc(passes=4, seed=7)
    x = _inputs(model)
    with torch.no_grad():
        preds = model.predict(x)
        probs = []
        for t in range(4):  # the same model with its dropout in train mode, seeded by hand
            torch.manual_seed(7 + t)
            model.head.dropout.train()
            probs.append(model.head(model.extract_feat(x)).double().softmax(1))
            model.head.dropout.eval()
        eval_p = model.head(model.extract_feat(x)).double().softmax(1)
    probs = torch.stack(probs)
    mean = probs.mean(0)
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]).double(), mean, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(mean, eval_p)  # the passes are not the deterministic forward
    names = preds[0].metainfo['member_scores']
    mi = torch.stack([getattr(p, MEMBER_SCORES_FIELD) for p in preds])[:, names.index('mutual-information')]
    ent = lambda p: -(p * p.log()).sum(-1)  # noqa: E731
    torch.testing.assert_close(mi, ent(mean) - ent(probs).mean(0), rtol=1e-9, atol=1e-12)
    assert preds[0].metainfo['members'] == 4 and preds[0].metainfo['output_kind'] == 'logits'


def test_same_state_dict_as_image_classifier_and_training_is_plain():
    plain = MODELS.build(classifier_cfg())
    model = _mc()
    assert list(model.state_dict()) == list(plain.state_dict())
    model.load_state_dict(plain.state_dict())
    model.train()
    data = model.data_preprocessor(batch(4), True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss'])
    assert model(data['inputs'], mode='tensor').shape == (4, K)  # training: one plain forward


def test_refusals_name_the_option():
    with pytest.raises(ValueError, match=r'MCDropoutImageClassifier: passes=1; MC dropout needs an int passes >= 2'):
        _mc(passes=1)
    with pytest.raises(ValueError, match=r"has no dropout module with p > 0; give its head dropout: "
                                         r"head=dict\(type='OutputLayerClsHead', dropout=0.2"):
        MODELS.build(classifier_cfg(typ='MCDropoutImageClassifier'))


def test_the_mc_dropout_config_trains_and_tests_through_the_runner(fmnist_root, tmp_path, module_scope):
    cfg = demo_cfg('mc_dropout_fmnist_demo', fmnist_root, tmp_path)
    cfg.model.passes = 3
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model, MCDropoutImageClassifier) and runner.model.head.dropout.p == 0.2
    runner.train()
    metrics = runner.test()
    for c in ('max-prob', 'mutual-information', 'expected-entropy', 'class-variance', 'disagreement'):
        assert f'selective/OOD-AUROC[{c}]' in metrics and f'selective/AURC[{c}]' in metrics
    assert 0 <= metrics['selective/accuracy'] <= 1
