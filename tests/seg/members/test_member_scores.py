"""The scores of several members by name: a sample written by write_members is read with its maps
(raw map, ranking key, [0, 1] confidence from the core), the metrics rank by them as by the same
field, the hooks check them before the first image, TTA views give them; the errors of a member
score asked of one model and of a layer score of mixed members."""
import math

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import HOOKS, MODELS
from mmseg.structures import SegDataSample

from tests.helpers.metrics import build as build_metric
from tests.helpers.metrics import run
from tests.helpers.samples import make_sample
from tests.seg.members.common import build, model_cfg, raw_batch, reference
from uqseg.core.member_statistics import MemberStatistics
from uqseg.core.scores import member_score_confidence, member_score_key
from uqseg.seg.metrics.prediction import raw_score_map, read_prediction, score_key_map, score_map
from uqseg.seg.models.segmentors import write_members

pytestmark = pytest.mark.usefixtures('one_thread')


def _members_sample(seed=0, kinds=('logits', 'logits', 'logits'), k=4, size=(6, 7), set_name='A'):
    g = torch.Generator().manual_seed(seed)
    stats = MemberStatistics(dim=1)
    for kind in kinds:
        stats.update(torch.randn(1, k, *size, generator=g) * 2 - (kind == 'distance_logits') * 3, kind)
    s = SegDataSample(metainfo=dict(img_path=f'{seed}.png', set_name=set_name))
    s.gt_sem_seg = PixelData(data=torch.randint(0, k, (1,) + size, generator=g))
    write_members(s, stats, 'an ensemble of 3')
    return s.to_dict()


def test_a_sample_of_members_is_read_with_its_maps():
    sample = _members_sample()
    pred = read_prediction(sample)
    assert set(pred.member_maps) == {'mutual-information', 'expected-entropy', 'class-variance', 'disagreement'}
    for name, m in pred.member_maps.items():
        assert torch.equal(raw_score_map(pred, name), m)
        assert torch.equal(score_key_map(pred, name), member_score_key(name, m))
        assert torch.equal(score_map(pred, sample, name), member_score_confidence(name, m, 4).float())
    assert torch.equal(raw_score_map(pred, 'own'), pred.member_maps['mutual-information'])
    # the functions of p are those of the mean
    torch.testing.assert_close(raw_score_map(pred, 'max-prob'), pred.logits.softmax(0).amax(0))


def test_metrics_rank_by_the_named_member_score_as_by_its_field():
    samples = [_members_sample(seed, set_name='AB'[seed % 2]) for seed in range(6)]
    by_name = run(build_metric('PixelUncertaintyMetric', score='mutual-information'), samples)
    by_field = run(build_metric('PixelUncertaintyMetric', score_field='seg_mutual_information',
                                score_range=(0.0, math.log(4)), score_is='uncertainty'), samples)
    assert by_name.keys() == by_field.keys()
    for key in by_name:
        assert by_name[key] == pytest.approx(by_field[key], abs=2e-3), key
    ood = run(build_metric('OODDetectionMetric', score='disagreement', ood_sets=['B']), samples)
    assert 0 <= ood['B/OOD_AUROC_px'] <= 1 and 0 <= ood['B/OOD_AUROC'] <= 1


def test_layer_scores_of_members_of_one_kind_and_the_errors_of_missing_scores():
    dismax = _members_sample(kinds=('distance_logits',) * 2)
    pred = read_prediction(dismax)
    assert torch.equal(raw_score_map(pred, 'MMLES'), pred.member_maps['MMLES'])
    assert torch.equal(score_key_map(pred, 'MMLES'), pred.member_maps['MMLES'].double())  # higher = confident
    mixed = read_prediction(_members_sample(kinds=('logits', 'distance_logits')))
    with pytest.raises(ValueError, match=r"0\.png: score='MMLES' .* an ensemble of 3 output logits x1, "
                                         r"distance_logits x1"):
        raw_score_map(mixed, 'MMLES')
    one = read_prediction(make_sample(torch.randn(4, 6, 7), torch.zeros(6, 7, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"x\.jpg: score='mutual-information' needs several members"):
        score_key_map(one, 'mutual-information')


def test_hooks_check_a_member_score_against_the_model_before_the_first_image(tmp_path):
    class Runner:  # what before_test reads
        model = build(model_cfg())
    hook = HOOKS.build(dict(type='SavePredictionMapsHook', out_dir=str(tmp_path), scores=['mutual-information']))
    with pytest.raises(ValueError, match="scores='mutual-information' needs several members .* a plain decode head"):
        hook.before_test(Runner)
    Runner.model = build(model_cfg(type='MCDropoutEncoderDecoder', passes=2))
    hook.before_test(Runner)
    HOOKS.build(dict(type='UncertaintyMapHook', scores=['mutual-information'])).before_test_epoch(Runner)


def test_tta_views_are_members():
    plain = build(model_cfg())
    tta = MODELS.build(dict(type='MeanProbabilitySegTTAModel', module=model_cfg())).eval()
    tta.module.load_state_dict(plain.state_dict())
    views = [raw_batch(1), raw_batch(1, flip=True)]
    views[1]['inputs'] = [x.flip(-1) for x in views[1]['inputs']]  # the flipped view (flipped back after)
    with torch.no_grad():
        z = [plain.test_step(dict(inputs=v['inputs'], data_samples=raw_batch(1, flip=f)['data_samples']))[0]
             .seg_logits.data for v, f in zip(views, (False, True))]
        merged = tta.test_step(dict(inputs=[v['inputs'] for v in views],
                                    data_samples=[v['data_samples'] for v in views]))[0]
    ref = reference(z)
    torch.testing.assert_close(merged.seg_mutual_information.data[0], ref['mutual-information'], rtol=1e-9,
                               atol=1e-9)
    torch.testing.assert_close(merged.seg_logits.data.double().softmax(0), ref['mean'], rtol=0, atol=1e-6)
    assert merged.metainfo['members'] == 2 and float(merged.seg_mutual_information.data.max()) > 0
