"""MCDropoutEncoderDecoder: a plain checkpoint loads; the passes are seeded (reproducible, different
across seeds, the global RNG untouched) and their mixture and maps are those of the passes run by
hand; dropout under an output layer; T < 2 and a model without dropout are refused."""
import pytest
import torch

from tests.seg.members.common import CE, build, model_cfg, raw_batch, reference
from uqseg.seg.models.segmentors import dropout_modules
from uqseg.seg.outputs import member_map_field, sample_output

pytestmark = pytest.mark.usefixtures('one_thread')


def _mc(passes=3, seed=0, config=CE, **kw):
    plain = build(model_cfg(config, **kw))
    mc = build(model_cfg(config, type='MCDropoutEncoderDecoder', passes=passes, seed=seed, **kw), seed=5)
    mc.load_state_dict(plain.state_dict(), strict=True)  # the same state dict: a plain checkpoint loads
    return plain, mc


def _predict(model, n=1):
    data = model.data_preprocessor(raw_batch(n), False)
    with torch.no_grad():
        return model.predict(data['inputs'], data['data_samples'])


def test_passes_are_seeded_reproducible_and_leave_the_global_rng_alone():
    plain, mc = _mc(passes=3, seed=0)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b = _predict(mc), _predict(mc)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a[0].seg_logits.data, b[0].seg_logits.data)
    assert torch.equal(a[0].seg_mutual_information.data, b[0].seg_mutual_information.data)
    _, other = _mc(passes=3, seed=7)
    c = _predict(other)
    assert not torch.equal(a[0].seg_logits.data, c[0].seg_logits.data)
    # the passes by hand: seed + t, dropout on, BatchNorm in eval mode
    data = plain.data_preprocessor(raw_batch(1), False)
    metas = [s.metainfo for s in data['data_samples']]
    passes = []
    for t in range(3):
        torch.manual_seed(t)
        for m in dropout_modules(plain):
            m.train()
        with torch.no_grad():
            passes.append(plain.postprocess_result(plain.inference(data['inputs'], metas))[0].seg_logits.data)
        plain.eval()
    assert not torch.equal(passes[0], passes[1])
    ref = reference(passes)
    torch.testing.assert_close(a[0].seg_logits.data.double().softmax(0), ref['mean'], rtol=0, atol=1e-6)
    for name in ('mutual-information', 'expected-entropy', 'class-variance', 'disagreement'):
        torch.testing.assert_close(getattr(a[0], member_map_field(name)).data[0], ref[name], rtol=1e-9, atol=1e-9)
    assert float(a[0].seg_mutual_information.data.max()) > 0
    assert not mc.training and not any(m.training for m in dropout_modules(mc))
    out = sample_output(a[0])
    assert (out.score, out.members, out.member_kinds) == ('mutual-information', 3, ('logits',) * 3)


def test_dropout_before_an_output_layer_is_active_and_the_layer_scores_are_averaged():
    _, mc = _mc(passes=2, config=CE.replace('ce_shapes', 'edl_shapes'))
    got = _predict(mc)[0]
    assert float(got.seg_mutual_information.data.max()) > 0  # the passes differ: the head's dropout ran
    assert sample_output(got).maps[-1] == 'vacuity' and got.seg_vacuity.data.shape == (1, 64, 64)


def test_training_is_encoder_decoder_training():
    _, mc = _mc(passes=2)
    mc.train()
    data = mc.data_preprocessor(raw_batch(2), True)
    losses = mc.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(losses['decode.loss_ce'])


@pytest.mark.parametrize('passes', [1, 0, 2.5, True])
def test_fewer_than_two_passes_are_refused(passes):
    with pytest.raises(ValueError, match=f'passes={passes!r}; MC dropout needs an int passes >= 2'):
        build(model_cfg(type='MCDropoutEncoderDecoder', passes=passes))


def test_a_model_without_dropout_is_refused_with_how_to_add_it():
    cfg = model_cfg(type='MCDropoutEncoderDecoder')
    cfg.decode_head.dropout_ratio = 0.0
    with pytest.raises(ValueError, match=r'ResNetV1c \+ FCNHead\) has no dropout module .* dropout_ratio'):
        build(cfg)
