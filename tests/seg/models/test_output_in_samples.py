"""What a segmentor's head outputs travels in each predicted sample (uqseg.seg.outputs): an
EncoderDecoder built with an OutputLayerHead writes output_kind / output_source / default_score into
the metainfo of every sample it predicts (whole and slide inference, mmseg's SegTTAModel, a deep copy,
TEDL's stage 1), a plain one writes nothing, and no MessageHub entry is left to go stale."""
import copy
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from tests.helpers.cfg import REPO
from tests.helpers.metrics import build, run
from tests.helpers.samples import raw_batch
from uqseg.seg.outputs import PLAIN, ModelOutput, model_output, record_output, sample_output

pytestmark = pytest.mark.usefixtures('one_thread')
EDL = ModelOutput('log_alpha', 'EDLLayer in OutputLayerFCNHead', 'vacuity')


def _model(config='edl_shapes_demo', **kw):
    cfg = copy.deepcopy(Config.fromfile(f'{REPO}/configs/{config}.py').model)
    cfg.update(kw)
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def _data(n=2, size=(64, 64), flip=False, seed=0):
    return raw_batch(n, size, seed, flip)


def _meta(sample):
    return {k: sample.metainfo.get(k) for k in ('output_kind', 'output_source', 'default_score')}


@pytest.mark.parametrize('test_cfg', [None, dict(mode='slide', crop_size=(40, 40), stride=(24, 24))])
def test_an_output_layer_head_puts_its_output_in_every_predicted_sample(test_cfg):
    model = _model(**({'test_cfg': test_cfg} if test_cfg else {}))
    with torch.no_grad():
        out = model.test_step(_data())
    assert [sample_output(s) for s in out] == [EDL, EDL]
    assert all(_meta(s) == EDL.metainfo() for s in out)
    assert model_output(model) == EDL
    # the Evaluator hands metrics the samples as dicts: the reader sees the same
    assert sample_output(out[0].to_dict(), 'x.png') == EDL
    # tensor and loss modes return no samples and are left alone
    with torch.no_grad():
        assert isinstance(model(torch.zeros(1, 3, 64, 64), mode='tensor'), torch.Tensor)
    assert 'uqseg/output' not in MessageHub.get_current_instance().runtime_info


def test_a_plain_segmentor_writes_nothing_and_its_samples_read_as_plain():
    model = _model('ce_shapes_demo')
    with torch.no_grad():
        out = model.test_step(_data())
    assert all(_meta(s) == dict.fromkeys(_meta(s)) for s in out)
    assert sample_output(out[0]) == PLAIN and len(model._forward_hooks) == 0


def test_a_plain_model_evaluated_after_an_edl_one_is_not_mistaken_for_it():
    """The former MessageHub announcement was process-wide: a plain model's samples evaluated after
    an EDL model's were read as log alpha. Each sample now says what produced it."""
    edl, plain = _model(), _model('ce_shapes_demo')
    with torch.no_grad():
        edl_out = edl.test_step(_data(seed=1))
        plain_out = plain.test_step(_data(seed=2))
    edl_samples = [s.to_dict() for s in edl_out]
    plain_samples = [s.to_dict() for s in plain_out]
    assert run(build('PixelUncertaintyMetric', score='vacuity', per_image=False), edl_samples)['A/AUROC'] >= 0
    with pytest.raises(ValueError, match=r"0\.png: score='vacuity' needs an EDL layer.*a plain decode head "
                                         'outputs logits'):
        run(build('PixelUncertaintyMetric', score='vacuity'), plain_samples)
    own = run(build('PixelUncertaintyMetric', score='own', per_image=False), plain_samples)
    mp = run(build('PixelUncertaintyMetric', score='max-prob', per_image=False), plain_samples)
    assert own == mp


def test_tedl_stage_one_samples_say_logits_and_the_kind_follows_the_switch():
    model = _model()
    layer = model.decode_head.conv_seg
    layer.set_evidential(False)
    with torch.no_grad():
        out = model.test_step(_data())
    assert sample_output(out[0]) == ModelOutput('logits', 'EDLLayer in OutputLayerFCNHead', 'max-prob')
    layer.set_evidential(True)
    with torch.no_grad():
        out = model.test_step(_data())
    assert sample_output(out[0]) == EDL


def test_the_tta_model_keeps_the_output_and_copies_keep_the_hook():
    cfg = copy.deepcopy(Config.fromfile(f'{REPO}/configs/dismax_shapes_demo.py').model)
    torch.manual_seed(0)
    for tta_type in ('SegTTAModel', 'MeanProbabilitySegTTAModel'):
        tta = MODELS.build(dict(type=tta_type, module=cfg)).eval()
        views = [_data(flip=False), _data(flip=True)]
        data = dict(inputs=[v['inputs'] for v in views], data_samples=[v['data_samples'] for v in views])
        with torch.no_grad():
            merged = tta.test_step(data)
        want = model_output(tta.module)
        assert want.kind == 'distance_logits' and want.score == 'MMLES'
        if tta_type == 'MeanProbabilitySegTTAModel':  # the views are members: their mixture, averaged layer scores
            want = ModelOutput('logits', tta.source, 'mutual-information', 2,
                               ('mutual-information', 'expected-entropy', 'class-variance', 'disagreement', 'MDS',
                                'MMLS', 'MMLES'), ('distance_logits',) * 2)
        assert [sample_output(s) for s in merged] == [want, want]
    # a deep copy (the EMA teacher) and a pickled model write their own head's output, hook once
    model = _model()
    record_output(record_output(model))
    assert len(model._forward_hooks) == 1
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        clone.decode_head.conv_seg.set_evidential(False)
        with torch.no_grad():
            out = clone.test_step(_data(n=1))
        assert sample_output(out[0]).kind == 'logits'
        assert len(clone._forward_hooks) == 1
    with torch.no_grad():
        assert sample_output(model.test_step(_data(n=1))[0]) == EDL


def test_bad_output_metainfo_names_the_image_and_key():
    s = SegDataSample(metainfo=dict(output_kind='log_alpha', default_score='MMLES'))
    with pytest.raises(ValueError, match=r"a\.png: metainfo default_score='MMLES' needs a DisMax"):
        sample_output(s, 'a.png')
    with pytest.raises(ValueError, match=r"a\.png: metainfo output_kind='alpha' is not an output kind"):
        sample_output(dict(output_kind='alpha', default_score='vacuity'), 'a.png')
    with pytest.raises(ValueError, match='comes without default_score'):
        sample_output(dict(metainfo=dict(output_kind='log_alpha')))
