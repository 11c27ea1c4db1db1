"""SelectivePredictionMetric (uqseg.cls.metrics): mmpretrain DataSamples through process /
compute_metrics equal the static calculate (= uqseg.core.selective.selective_report) on the stacked
tensors; the model's own score with EDL and DisMax outputs; OOD sets and their errors; the PNGs and
the Visualizer images; and a real mmengine Runner.test() with an OutputLayerClsHead."""
import glob
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner
from mmengine.visualization import LocalVisBackend, Visualizer
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader, Dataset

import uqseg.cls.models  # noqa: F401  (OutputLayerClsHead for the Runner test)
from tests.helpers.files import assert_png
from uqseg.cls.metrics import SelectivePredictionMetric
from uqseg.core.output_layers import DisMaxLayer, EDLLayer
from uqseg.core.scores import raw_score
from uqseg.core.selective import CONFIDENCES, selective_report
from uqseg.engine.runtime_info import current_iter

pytestmark = pytest.mark.usefixtures('one_thread')
K = 4


def _outputs(n=60, seed=0, layer=None):
    """``(z, labels, kind, own)``: plain logits, or a real output layer's outputs on random features."""
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(n, 8, generator=g)
    labels = torch.randint(0, K, (n,), generator=g)
    if layer is None:
        z = torch.randn(n, K, generator=g) * 2
        z[torch.arange(n), labels] += torch.rand(n, generator=g) * 3  # better than chance
        return z, labels, 'logits', None
    torch.manual_seed(seed)
    m = layer(8, K)
    with torch.no_grad():
        z = m(x)
    return z, labels, m.output_kind, m.default_score


def _samples(z, labels, kind=None, own=None, set_names=None, plain=False):
    """DataSamples as mmpretrain heads fill them: ``pred_score`` (and ``pred_label``), and with an
    output layer (``plain=False`` and a ``kind``) ``pred_logits`` + metainfo as OutputLayerClsHead."""
    out = []
    for i in range(z.shape[0]):
        s = DataSample().set_gt_label(int(labels[i])).set_pred_score(z[i].softmax(0))
        s.set_pred_label(int(z[i].argmax()))
        if kind is not None and not plain:
            s.set_field(z[i].clone(), 'pred_logits', dtype=torch.Tensor)
            s.set_metainfo(dict(output_kind=kind, default_score=own))
        if set_names is not None:
            s.set_metainfo(dict(set_name=set_names[i]))
        out.append(s)
    return out


def _run(metric, samples, batch=7, as_dict=True):
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        metric.process({}, [s.to_dict() for s in chunk] if as_dict else chunk)
    return metric.compute_metrics(metric.results)


def _same(a: dict, b: dict, tol=1e-12):
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or abs(a[k] - b[k]) <= tol, (k, a[k], b[k])


# ------------------------------------------------------------------------------------ process / compute
@pytest.mark.parametrize('as_dict', [True, False])
def test_plain_head_samples_equal_calculate_on_stacked_tensors(as_dict):
    z, labels, _, _ = _outputs()
    samples = _samples(z, labels)
    metric = METRICS.build(dict(type='SelectivePredictionMetric', coverages=(0.5, 0.9)))
    got = _run(metric, samples, as_dict=as_dict)
    scores = torch.stack([s.pred_score for s in samples])
    want = SelectivePredictionMetric.calculate(scores, labels, 'probs', CONFIDENCES, (0.95, 0.99), (0.5, 0.9))
    _same(got, want)
    # = the core report on the softmax rows, and close to it on the logits (float32 softmax)
    _same(got, selective_report(scores, labels, 'probs', coverages=(0.5, 0.9)))
    ref = selective_report(z, labels, coverages=(0.5, 0.9))
    # probability rows say how many NLL terms the 1e-12 clamp changed; logits need no clamp
    assert got.pop('NLL-clamped', 0) == int((scores.gather(1, labels[:, None]) < 1e-12).sum())
    _same(got, ref, tol=1e-5)
    assert 'risk@cov0.9[margin]' in got and 'curves' not in got and metric.prefix == 'selective'


@pytest.mark.parametrize('layer', [EDLLayer, DisMaxLayer])
def test_own_score_of_edl_and_dismax_outputs(layer):
    skm = pytest.importorskip('sklearn.metrics')
    z, labels, kind, own = _outputs(80, seed=1, layer=layer)
    assert (kind, own) == {EDLLayer: ('log_alpha', 'vacuity'), DisMaxLayer: ('distance_logits', 'MMLES')}[layer]
    metric = SelectivePredictionMetric(confidences=('max-prob', 'own'))
    got = _run(metric, _samples(z, labels, kind, own))
    assert f'AURC[{own}]' in got and 'AURC[own]' not in got
    _same(got, SelectivePredictionMetric.calculate(z, labels, kind, ('max-prob', own)))
    # ranking by the raw score (vacuity negated: lower = more confident)
    correct = (z.argmax(1) == labels).numpy().astype(int)
    raw = raw_score(own, z).numpy() * (-1 if own == 'vacuity' else 1)
    assert got[f'AUROC[{own}]'] == pytest.approx(skm.roc_auc_score(correct, raw), abs=1e-12)


def test_own_without_an_output_layer_is_a_clear_error():
    z, labels, _, _ = _outputs(20)
    metric = SelectivePredictionMetric(confidences=('own',))
    with pytest.raises(ValueError, match=r"SelectivePredictionMetric: confidences contains 'own'.*plain one"):
        _run(metric, _samples(z, labels))


def test_ood_sets():
    skm = pytest.importorskip('sklearn.metrics')
    z, labels, kind, own = _outputs(50, seed=2, layer=EDLLayer)
    zo, _, _, _ = _outputs(30, seed=3, layer=EDLLayer)
    zo = zo * 0.5
    names = ['ID-a'] * 25 + ['ID-b'] * 25 + ['OOD'] * 30
    all_z = torch.cat([z, zo])
    all_labels = torch.cat([labels, torch.full((30,), 99)])  # OOD labels are not used (out of range here)
    metric = SelectivePredictionMetric(confidences=('max-prob', 'own'), ood_sets=('OOD',))
    got = _run(metric, _samples(all_z, all_labels, kind, own, names))
    _same(got, SelectivePredictionMetric.calculate(z, labels, kind, ('max-prob', 'vacuity'), ood_pred=zo))
    for name, s_id, s_ood in (('max-prob', z.softmax(1).max(1).values, zo.softmax(1).max(1).values),
                              ('vacuity', -raw_score('vacuity', z), -raw_score('vacuity', zo))):
        y = np.r_[np.ones(50), np.zeros(30)]
        want = skm.roc_auc_score(y, torch.cat([s_id, s_ood]).numpy())
        assert got[f'OOD-AUROC[{name}]'] == pytest.approx(want, abs=1e-12)
    assert 0 <= got['OOD-FPR95[vacuity]'] <= 1


def test_ood_set_without_samples_and_other_errors():
    z, labels, _, _ = _outputs(20)
    samples = _samples(z, labels, set_names=['test'] * 10 + ['shift'] * 10)
    metric = SelectivePredictionMetric(ood_sets=('SVHN',))
    with pytest.raises(ValueError, match=r"ood_sets \['SVHN'\] have no sample; the set names seen are "
                                         r"\['shift', 'test'\]"):
        _run(metric, samples)
    with pytest.raises(ValueError, match='every sample is in ood_sets'):
        _run(SelectivePredictionMetric(ood_sets=('test', 'shift')), samples)
    bad = z.clone()
    bad[5, 0] = float('nan')
    with pytest.raises(ValueError, match=r'SelectivePredictionMetric: z: 1 row\(s\) hold NaN/Inf values, the first '
                                         r'is row 5'):
        _run(SelectivePredictionMetric(), _samples(bad, labels))
    with pytest.raises(ValueError, match=r'SelectivePredictionMetric: labels must lie in \[0, 3\]'):
        _run(SelectivePredictionMetric(), _samples(z, labels + 1))
    with pytest.raises(ValueError, match="SelectivePredictionMetric: confidences='vacuity' needs an EDL.*'probs'"):
        _run(SelectivePredictionMetric(confidences=('vacuity',)), _samples(z, labels))
    with pytest.raises(ValueError, match="confidences='maxprob' is not a score"):
        SelectivePredictionMetric(confidences=('maxprob',))
    with pytest.raises(ValueError, match='coverages must lie in'):
        SelectivePredictionMetric(coverages=(1.5,))
    with pytest.raises(KeyError, match='neither pred_score nor pred_logits'):
        SelectivePredictionMetric().process({}, [DataSample().set_gt_label(1).to_dict()])


# ------------------------------------------------------------------------------------ pictures
def test_out_dir_pngs_and_visualizer_images(tmp_path):
    z, labels, _, _ = _outputs(40, seed=4)
    vis = Visualizer.get_instance('selective_metric_test', vis_backends=[dict(type='LocalVisBackend')],
                                  save_dir=str(tmp_path / 'vis'))
    assert isinstance(vis._vis_backends['LocalVisBackend'], LocalVisBackend)
    metric = SelectivePredictionMetric(out_dir=str(tmp_path / 'plots'))
    got = _run(metric, _samples(z, labels))
    assert 'curves' not in got and 'reliability' not in got
    assert_png(tmp_path / 'plots' / 'risk_coverage.png')
    assert_png(tmp_path / 'plots' / 'reliability.png')
    sent = sorted(osp.basename(p) for p in glob.glob(str(tmp_path / 'vis' / 'vis_data' / 'vis_image' / '*.png')))
    step = current_iter()  # the images are logged at the runner's iteration (another test may have left one)
    assert sent == [f'selective_reliability_{step}.png', f'selective_risk_coverage_{step}.png'], sent
    for p in sent:
        assert_png(tmp_path / 'vis' / 'vis_data' / 'vis_image' / p)


# ------------------------------------------------------------------------------- a real Runner.test()
class _Images(Dataset):
    """24 one-channel 32x32 images, the last 8 of set 'noise' (OOD), the others of set 'test'."""

    def __init__(self):
        g = torch.Generator().manual_seed(5)
        self.images = torch.rand(24, 1, 32, 32, generator=g)
        self.labels = torch.randint(0, K, (24,), generator=g)

    def __len__(self):
        return 24

    def __getitem__(self, i):
        s = DataSample().set_gt_label(int(self.labels[i]))
        s.set_metainfo(dict(set_name='noise' if i >= 16 else 'test'))
        return dict(inputs=self.images[i].clone(), data_samples=s)


def test_runner_test_with_an_output_layer_head(tmp_path):
    model = dict(type='ImageClassifier', backbone=dict(type='LeNet5'), neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='OutputLayerClsHead', num_classes=K, in_channels=120,
                           output_layer=dict(type='EDLLayer'), loss=dict(type='EDLLoss')))
    runner = Runner(
        model=model, work_dir=str(tmp_path / 'work'), experiment_name='selective_metric_runner',
        test_dataloader=DataLoader(_Images(), batch_size=8, collate_fn=pseudo_collate),
        test_cfg=dict(), test_evaluator=dict(type='SelectivePredictionMetric', confidences=('max-prob', 'own'),
                                             ood_sets=('noise',), out_dir=str(tmp_path / 'plots')),
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]),
        default_scope='mmpretrain', log_level='WARNING')
    metrics = runner.test()
    assert {'selective/accuracy', 'selective/AURC[vacuity]', 'selective/OOD-AUROC[vacuity]',
            'selective/OOD-FPR95[max-prob]'} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    # the same values from the model's outputs directly
    runner.model.eval()
    with torch.no_grad():
        data = runner.model.data_preprocessor(pseudo_collate([_Images()[i] for i in range(24)]), False)
        z = runner.model(data['inputs'], mode='tensor')
    ds = _Images()
    want = SelectivePredictionMetric.calculate(z[:16], ds.labels[:16], 'log_alpha', ('max-prob', 'vacuity'),
                                               ood_pred=z[16:])
    _same({k.split('/', 1)[1]: v for k, v in metrics.items()}, want, tol=1e-6)
    assert_png(tmp_path / 'plots' / 'risk_coverage.png')
    assert glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' / 'vis_image' / 'selective_risk_coverage_*.png'))


def test_evaluator_adds_the_prefix():
    z, labels, _, _ = _outputs(30, seed=6)
    ev = Evaluator([dict(type='SelectivePredictionMetric', confidences=('margin',), prefix='sel')])
    samples = _samples(z, labels)
    ev.process(samples[:15])
    ev.process(samples[15:])
    got = ev.evaluate(30)
    assert set(got) == {f'sel/{k}' for k in selective_report(z.softmax(1), labels, 'probs', confidences=('margin',))}
