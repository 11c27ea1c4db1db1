"""EnsembleClassifier: one member is the plain model; two members of different architectures and
normalisations against a float64 computation from their stored outputs; the Runner's test loop with
SelectivePredictionMetric reading the member maps; the bad members, each named."""
import math

import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from tests.cls.members.conftest import K, batch, classifier_cfg, demo_cfg, save_member
from uqseg.cls.models.classifiers import EnsembleClassifier
from uqseg.cls.models.classifiers.member_outputs import MEMBER_SCORES_FIELD
from uqseg.cls.outputs import collect_model_outputs, split_ood
from uqseg.core.selective import selective_report

pytestmark = pytest.mark.usefixtures('one_thread')


def _plain(model_cfg, checkpoint):
    model = MODELS.build(model_cfg)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    return model.eval()


def _outputs(model, data):
    with torch.no_grad():
        return model(model.data_preprocessor(data, False)['inputs'], mode='tensor').double()


def _run(ens, data):
    with torch.no_grad():
        data = ens.data_preprocessor(data, False)
        return ens(**data, mode='predict'), ens(data['inputs'], mode='tensor')


def test_an_ensemble_of_one_member_is_the_plain_model(tmp_path):
    cfg = classifier_cfg()
    ckpt = save_member(tmp_path / 'a.pth', cfg, seed=1)
    ens = MODELS.build(dict(type='EnsembleClassifier', members=[dict(model=cfg, checkpoint=ckpt)])).eval()
    data = batch()
    z = _outputs(_plain(cfg, ckpt), data)
    preds, tensor = _run(ens, data)
    p = torch.stack([s.pred_score for s in preds])
    torch.testing.assert_close(p.double(), z.softmax(1), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(tensor.double().softmax(1), z.softmax(1), rtol=1e-5, atol=1e-7)
    assert [int(s.pred_label) for s in preds] == z.argmax(1).tolist()
    maps = torch.stack([getattr(s, MEMBER_SCORES_FIELD) for s in preds])
    names = preds[0].metainfo['member_scores']
    # one member: no epistemic part, no variance, no disagreement; the expected entropy is the entropy
    for name in ('mutual-information', 'class-variance', 'disagreement'):
        assert torch.equal(maps[:, names.index(name)], torch.zeros(len(preds), dtype=torch.float64))
    h = -(z.softmax(1) * z.log_softmax(1)).sum(1)
    torch.testing.assert_close(maps[:, names.index('expected-entropy')], h)
    assert preds[0].metainfo['members'] == 1 and preds[0].metainfo['default_score'] == 'mutual-information'


def test_two_members_of_different_architectures_against_their_stored_outputs(tmp_path):
    cfg_a = classifier_cfg()
    cfg_b = classifier_cfg(base_channels=4, mean=60.0, std=70.0)  # narrower, other normalisation
    a, b = save_member(tmp_path / 'a.pth', cfg_a, 1), save_member(tmp_path / 'b.pth', cfg_b, 2)
    ens = MODELS.build(dict(type='EnsembleClassifier', members=[dict(model=cfg_a, checkpoint=a),
                                                                 dict(model=cfg_b, checkpoint=b)])).eval()
    data = batch(8)
    probs = torch.stack([_outputs(_plain(cfg_a, a), data).softmax(1), _outputs(_plain(cfg_b, b), data).softmax(1)])
    mean = probs.mean(0)
    ent = lambda p: -(p * p.log()).sum(-1)  # noqa: E731
    top = mean.argmax(1)
    want = {'mutual-information': ent(mean) - ent(probs).mean(0),
            'expected-entropy': ent(probs).mean(0),
            'class-variance': probs[:, torch.arange(8), top].var(0, unbiased=False),
            'disagreement': (probs.argmax(2) != top).double().mean(0)}
    preds, tensor = _run(ens, data)
    torch.testing.assert_close(torch.stack([s.pred_score for s in preds]).double(), mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(tensor.double().softmax(1), mean, rtol=1e-5, atol=1e-7)
    names = preds[0].metainfo['member_scores']
    assert set(want) <= set(names) and preds[0].metainfo['member_kinds'] == ['logits', 'logits']
    maps = torch.stack([getattr(s, MEMBER_SCORES_FIELD) for s in preds])
    for name, v in want.items():
        torch.testing.assert_close(maps[:, names.index(name)], v, rtol=1e-9, atol=1e-12, msg=name)
    assert float(want['mutual-information'].min()) > 0  # the members differ


def test_the_runner_tests_an_ensemble_and_the_metric_ranks_by_its_maps(fmnist_root, tmp_path, module_scope):
    member_cfg = demo_cfg('ce_fmnist_demo', fmnist_root, tmp_path)
    ckpts = [save_member(tmp_path / f'm{i}.pth', member_cfg.model.to_dict(), i) for i in range(2)]
    cfg = demo_cfg('ensemble_fmnist_demo', fmnist_root, tmp_path)
    cfg.model.members = [dict(model=member_cfg.model.to_dict(), checkpoint=c) for c in ckpts]
    cfg.test_evaluator[0].confidences = ('max-prob', 'mutual-information', 'disagreement', 'own')
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model, EnsembleClassifier)
    metrics = runner.test()
    # the reference: the report of the ensemble's collected outputs and maps, split as the metric splits
    out = collect_model_outputs(runner.model.eval(), runner.test_dataloader)
    z, y, ood = split_ood(out.values, out.labels, out.set_names, ('mnist', ), 'test')
    is_ood = torch.tensor([n == 'mnist' for n in out.set_names])
    maps = {k: v[~is_ood] for k, v in out.member_maps.items()}
    ood_maps = {k: v[is_ood] for k, v in out.member_maps.items()}
    ref = selective_report(z, y, 'logits', ('max-prob', 'mutual-information', 'disagreement'),
                           (0.95, 0.99), (0.5, 0.8, 0.9), ood_z=ood, member_maps=maps, ood_member_maps=ood_maps,
                           member_kinds=out.member_kinds)
    for c in ('max-prob', 'mutual-information', 'disagreement'):
        for m in ('AURC', 'AUROC', 'OOD-AUROC'):
            got, want = metrics[f'selective/{m}[{c}]'], ref[f'{m}[{c}]']
            assert got == pytest.approx(want, abs=1e-6) or (math.isnan(got) and math.isnan(want)), (m, c)
    assert out.members == 2 and out.member_kinds == ('logits', 'logits')


def _build(members):
    return MODELS.build(dict(type='EnsembleClassifier', members=members))


def test_bad_members_are_refused_naming_the_member(tmp_path):
    cfg = classifier_cfg()
    good = save_member(tmp_path / 'a.pth', cfg, 1)
    with pytest.raises(ValueError, match='members must be a non-empty list'):
        _build([])
    with pytest.raises(FileNotFoundError, match=r"member 1 \(model ImageClassifier\): checkpoint '.*nope.pth'"):
        _build([dict(model=cfg, checkpoint=good), dict(model=cfg, checkpoint=str(tmp_path / 'nope.pth'))])
    with pytest.raises(ValueError, match='member 0 .* has no checkpoint'):
        _build([dict(model=cfg)])
    with pytest.raises(KeyError, match=r"member 0: unknown key\(s\) \['weights'\]"):
        _build([dict(model=cfg, checkpoint=good, weights=1)])
    with pytest.raises(FileNotFoundError, match='member 0: .*no_such_config.py: no such config file'):
        _build([dict(config=str(tmp_path / 'no_such_config.py'), checkpoint=good)])
    # another class count
    cfg7 = classifier_cfg(head=dict(type='LinearClsHead', num_classes=7, in_channels=64))
    cfg7['data_preprocessor']['num_classes'] = 7
    seven = save_member(tmp_path / 'b.pth', cfg7, 2)
    with pytest.raises(ValueError, match=r'member 1 \(model ImageClassifier\) has 7 classes but member 0 .* has 10'):
        _build([dict(model=cfg, checkpoint=good), dict(model=cfg7, checkpoint=seven)])
    # other class names (the checkpoints' dataset_meta)
    names = [f'c{i}' for i in range(K)]
    x = save_member(tmp_path / 'x.pth', cfg, 3, classes=names)
    y = save_member(tmp_path / 'y.pth', cfg, 4, classes=names[:4] + ['shirt'] + names[5:])
    with pytest.raises(ValueError, match=r"class names of member 1 .* differ from those of member 0 .* at class 4 "
                                         r"\('shirt' vs 'c4'\)"):
        _build([dict(model=cfg, checkpoint=x), dict(model=cfg, checkpoint=y)])
    assert _build([dict(model=cfg, checkpoint=x), dict(model=cfg, checkpoint=x)]).classes == tuple(names)
    # not a classifier with a head
    headless = dict(classifier_cfg(), head=None)
    with pytest.raises(ValueError, match=r'member 0 .* not a classifier with a head'):
        _build([dict(model=headless, checkpoint=good)])
    ens = _build([dict(model=cfg, checkpoint=good)])
    with pytest.raises(ValueError, match='EnsembleClassifier is not trained'):
        ens(torch.zeros(1, 1, 28, 28), [], mode='loss')
