"""EnsembleSegmentor: one member is the plain model; two members of different architectures
(own preprocessors, whole and slide inference) give the mixture and maps of their stored outputs;
one-channel and EDL members; the bad inputs, each an error naming the member."""
import pytest
import torch
from mmseg.registry import MODELS

from tests.seg.members.common import CE, build, model_cfg, other_architecture_cfg, raw_batch, reference, save
from uqseg.seg.outputs import member_map_field, sample_output

pytestmark = pytest.mark.usefixtures('one_thread')
MAPS = ('mutual-information', 'expected-entropy', 'class-variance', 'disagreement')


def _ensemble(*members, **kw):
    return MODELS.build(dict(type='EnsembleSegmentor', members=list(members), **kw)).eval()


def test_an_ensemble_of_one_member_is_the_plain_model(tmp_path):
    plain = build(model_cfg())
    # a preprocessor of the ensemble (e.g. a base config's top-level one) would normalise twice: ignored
    ens = _ensemble(dict(config=CE, checkpoint=save(plain, tmp_path / 'a.pth')),
                    data_preprocessor=dict(type='SegDataPreProcessor', mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0]))
    assert type(ens.data_preprocessor).__name__ == 'BaseDataPreprocessor'
    with torch.no_grad():
        got, want = ens.test_step(raw_batch()), plain.test_step(raw_batch())
    for g, w in zip(got, want):
        torch.testing.assert_close(g.seg_logits.data.softmax(0), w.seg_logits.data.softmax(0), rtol=0, atol=1e-6)
        assert torch.equal(g.pred_sem_seg.data, w.pred_sem_seg.data)
        assert torch.equal(g.gt_sem_seg.data, w.gt_sem_seg.data)
        ref = reference([w.seg_logits.data])
        for name in MAPS:  # one member: no disagreement; its expected entropy is its entropy
            m = getattr(g, member_map_field(name)).data
            assert m.shape == (1, 64, 64) and m.dtype == torch.float64, name
            torch.testing.assert_close(m[0], ref[name], rtol=1e-9, atol=1e-9)
        assert not g.seg_mutual_information.data.any() and float(g.seg_expected_entropy.data.min()) > 0
        out = sample_output(g)
        assert (out.kind, out.score, out.members, out.maps, out.member_kinds) == \
            ('logits', 'mutual-information', 1, MAPS, ('logits',))


def test_two_members_of_different_architectures_give_the_mixture_of_their_outputs(tmp_path):
    a, b = build(model_cfg(), seed=0), build(other_architecture_cfg(), seed=1)
    ens = _ensemble(dict(config=CE, checkpoint=save(a, tmp_path / 'a.pth')),
                    dict(model=other_architecture_cfg(), checkpoint=save(b, tmp_path / 'b.pth')))
    assert ens.members[1].test_cfg.mode == 'slide'
    with torch.no_grad():
        got = ens.test_step(raw_batch())
        za = [s.seg_logits.data for s in a.test_step(raw_batch())]  # each member's own preprocessor
        zb = [s.seg_logits.data for s in b.test_step(raw_batch())]
    for i, g in enumerate(got):
        ref = reference([za[i], zb[i]])
        torch.testing.assert_close(g.seg_logits.data.double().softmax(0), ref['mean'], rtol=0, atol=1e-6)
        assert torch.equal(g.pred_sem_seg.data[0], ref['mean'].argmax(0))
        for name in MAPS:
            torch.testing.assert_close(getattr(g, member_map_field(name)).data[0], ref[name], rtol=1e-9, atol=1e-9)
        assert float(g.seg_mutual_information.data.max()) > 0
    with pytest.raises(RuntimeError, match='not trained'):
        ens.loss(None, None)
    # TTA views of the ensemble: each view is the ensemble's mixture, the views are members
    tta = MODELS.build(dict(type='MeanProbabilitySegTTAModel', module=dict(
        type='EnsembleSegmentor', members=[dict(config=CE, checkpoint=str(tmp_path / 'a.pth'))] * 2))).eval()
    views = [raw_batch(1), raw_batch(1, flip=True)]
    with torch.no_grad():
        merged = tta.test_step(dict(inputs=[v['inputs'] for v in views],
                                    data_samples=[v['data_samples'] for v in views]))
    out = sample_output(merged[0])
    assert (out.members, out.member_kinds) == (2, ('logits',) * 2)
    assert out.source == 'TTA views of EnsembleSegmentor of 2 members'
    assert float(merged[0].seg_mutual_information.data.max()) > 0  # the flipped view differs


def test_one_channel_members_keep_one_channel_of_the_mean_foreground_probability(tmp_path):
    cfg = model_cfg(CE.replace('ce_shapes_demo', 'bce_sod_demo'))
    a, b = build(cfg, 0), build(cfg, 1)
    ens = _ensemble(dict(model=cfg, checkpoint=save(a, tmp_path / 'a.pth')),
                    dict(model=cfg, checkpoint=save(b, tmp_path / 'b.pth')))
    with torch.no_grad():
        got = ens.test_step(raw_batch(1))[0]
        pa, pb = a.test_step(raw_batch(1))[0].seg_logits.data, b.test_step(raw_batch(1))[0].seg_logits.data
    assert got.seg_logits.data.shape == (1, 64, 64)
    torch.testing.assert_close(got.seg_logits.data, (pa + pb) / 2)
    assert torch.equal(got.pred_sem_seg.data, ((pa + pb) / 2 > a.decode_head.threshold).float())
    ref = reference([torch.cat([1 - pa, pa]), torch.cat([1 - pb, pb])], ['probs', 'probs'])
    torch.testing.assert_close(got.seg_mutual_information.data[0], ref['mutual-information'])
    assert sample_output(got).member_kinds == ('probs', 'probs')


def test_edl_members_average_their_vacuity(tmp_path):
    cfg = model_cfg(CE.replace('ce_shapes', 'edl_shapes'))
    a, b = build(cfg, 0), build(cfg, 1)
    ens = _ensemble(dict(model=cfg, checkpoint=save(a, tmp_path / 'a.pth')),
                    dict(model=cfg, checkpoint=save(b, tmp_path / 'b.pth')))
    with torch.no_grad():
        got = ens.test_step(raw_batch(1))[0]
        za, zb = a.test_step(raw_batch(1))[0].seg_logits.data, b.test_step(raw_batch(1))[0].seg_logits.data
    vacuity = (4 / za.double().exp().sum(0) + 4 / zb.double().exp().sum(0)) / 2
    torch.testing.assert_close(got.seg_vacuity.data[0], vacuity)
    assert sample_output(got).maps == MAPS + ('vacuity',)


def test_bad_members_are_errors_naming_the_member(tmp_path):
    plain = build(model_cfg())
    ok = dict(config=CE, checkpoint=save(plain, tmp_path / 'a.pth'))
    with pytest.raises(ValueError, match='EnsembleSegmentor: members must be a non-empty list'):
        _ensemble()
    with pytest.raises(FileNotFoundError, match=r"member 1 \(.*ce_shapes_demo.py\): checkpoint '.*nope.pth' does not "):
        _ensemble(ok, dict(config=CE, checkpoint=str(tmp_path / 'nope.pth')))
    five = model_cfg()
    five.decode_head.num_classes = five.decode_head.out_channels = 5
    with pytest.raises(ValueError, match=r'member 1 \(model EncoderDecoder\) has 5 classes but member 0 .* has 4'):
        _ensemble(ok, dict(model=five, checkpoint=save(build(five), tmp_path / 'five.pth')))
    renamed = save(plain, tmp_path / 'renamed.pth', classes=('bg', 'disk', 'box', 'triangle'))
    with pytest.raises(ValueError, match=r"names of member 1 \(model EncoderDecoder\) differ from those of member 0 .* "
                                         r"at class 0 \('bg' vs 'background'\)"):
        _ensemble(ok, dict(model=model_cfg(), checkpoint=renamed))
    with pytest.raises(ValueError, match=r'EnsembleSegmentor member 1 \(model EncoderDecoder\): .*a\.pth does not fit'):
        _ensemble(ok, dict(model=other_architecture_cfg(), checkpoint=ok['checkpoint']))
    backbone = dict(type='ResNetV1c', depth=18, stem_channels=32, base_channels=32)
    with pytest.raises(ValueError, match=r'member 0 \(model ResNetV1c\): its model \(ResNetV1c\) is not an mmseg'):
        _ensemble(dict(model=backbone, checkpoint=ok['checkpoint']))
    with pytest.raises(FileNotFoundError, match=r"EnsembleSegmentor: member 0: nowhere.py: no such config file"):
        _ensemble(dict(config='nowhere.py', checkpoint=ok['checkpoint']))
