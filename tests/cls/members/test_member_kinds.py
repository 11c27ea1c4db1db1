"""Ensembles of EDL / DisMax members: the mean of their probabilities (alpha / S, the softmax of the
distance logits) and the mean of their layer scores; a layer score of members of mixed kinds is refused
naming their kinds, in selective_report and in SelectivePredictionMetric; a metric fed samples with
and without member maps is refused."""
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from tests.cls.members.conftest import K, batch, classifier_cfg, save_member
from uqseg.cls.metrics import SelectivePredictionMetric
from uqseg.cls.models.classifiers.member_outputs import MEMBER_SCORES_FIELD

pytestmark = pytest.mark.usefixtures('one_thread')

EDL = dict(type='OutputLayerClsHead', num_classes=K, in_channels=64, output_layer=dict(type='EDLLayer'),
           loss=dict(type='EDLLoss'))
DISMAX = dict(type='OutputLayerClsHead', num_classes=K, in_channels=64, output_layer=dict(type='DisMaxLayer'),
              loss=dict(type='DisMaxLoss'))


def _ensemble(tmp_path, heads):
    members = []
    for i, head in enumerate(heads):
        cfg = classifier_cfg(head=head)
        members.append(dict(model=cfg, checkpoint=save_member(tmp_path / f'{i}.pth', cfg, i)))
    return MODELS.build(dict(type='EnsembleClassifier', members=members)).eval()


def _predict(ens, data):
    with torch.no_grad():
        data = ens.data_preprocessor(data, False)
        outs = [z.double() for _, _, z in ens.member_outputs(data['inputs'])]
        return ens(**data, mode='predict'), outs


def test_an_ensemble_of_edl_members_averages_alpha_over_s_and_vacuity(tmp_path):
    ens = _ensemble(tmp_path, [EDL, EDL])
    preds, outs = _predict(ens, batch(5))
    alpha = [z.exp() for z in outs]  # z = log alpha
    mean = sum(a / a.sum(1, keepdim=True) for a in alpha) / 2
    vacuity = sum(K / a.sum(1) for a in alpha) / 2
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]).double(), mean, rtol=1e-6, atol=1e-7)
    names = preds[0].metainfo['member_scores']
    assert preds[0].metainfo['member_kinds'] == ['log_alpha', 'log_alpha'] and 'vacuity' in names
    maps = torch.stack([getattr(p, MEMBER_SCORES_FIELD) for p in preds])
    torch.testing.assert_close(maps[:, names.index('vacuity')], vacuity, rtol=1e-9, atol=1e-12)


def _metric_results(metric, preds, ood=()):
    for i, p in enumerate(preds):
        p.set_gt_label(i % K)
        p.set_metainfo(dict(set_name='mnist' if i in ood else 'fmnist'))
    metric.process(None, [p.to_dict() for p in preds])
    return metric.compute_metrics(metric.results)


def test_a_layer_score_of_mixed_members_is_refused_naming_their_kinds(tmp_path):
    preds, _ = _predict(_ensemble(tmp_path, [EDL, DISMAX]), batch(6))
    names = preds[0].metainfo['member_scores']
    assert 'vacuity' not in names and 'MMLES' not in names
    with pytest.raises(ValueError, match=r"confidences='vacuity' is the mean over members of a score of an EDL layer.*"
                                         r'log_alpha x1, distance_logits x1'):
        _metric_results(SelectivePredictionMetric(confidences=('max-prob', 'vacuity')), preds)
    report = _metric_results(SelectivePredictionMetric(confidences=('max-prob', 'own', 'class-variance'),
                                                       ood_sets=('mnist', )), preds, ood=(4, 5))
    assert {'AURC[mutual-information]', 'OOD-AUROC[class-variance]', 'AURC[max-prob]'} <= set(report)


def test_samples_with_and_without_member_maps_are_refused(tmp_path):
    preds, _ = _predict(_ensemble(tmp_path, [EDL]), batch(3))
    plain = DataSample().set_pred_score(torch.full((K, ), 1.0 / K)).set_gt_label(0)
    plain.set_field(torch.zeros(K), 'pred_logits', dtype=torch.Tensor)
    plain.set_metainfo(dict(output_kind='logits', default_score='mutual-information'))
    metric = SelectivePredictionMetric(confidences=('max-prob', ))
    metric.process(None, [p.to_dict() for p in preds] + [plain.to_dict()])
    with pytest.raises(ValueError, match='some samples carry member maps .* and some do not'):
        metric.compute_metrics(metric.results)
    one = SelectivePredictionMetric(confidences=('mutual-information', ))
    one.process(None, [plain.to_dict()])
    with pytest.raises(ValueError, match=r"'mutual-information' needs several members"):
        one.compute_metrics(one.results)
