"""uqseg calibrate on a classifier: the Fashion-MNIST demo config pointed at small IDX files: the
calibrated checkpoint holds fit_temperature of the validation split's raw outputs (computed here
independently), the record shows the fit lowering the NLL at equal accuracy, a
TemperatureScaledImageClassifier loading it predicts softmax(z / T); the test split, a val set
that is a test set, an EDL head and a missing checkpoint are refused; the ECE and per-class fits;
the OOD sets of the test metric are left out of a val loader that holds them; the bounds and a
reached bound land in the record, the checkpoint's meta and the JSON, with a warning line."""
import gzip
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint, save_checkpoint
from mmpretrain.registry import MODELS

from tests.helpers.cfg import REPO
from uqseg.cli import invoke
from uqseg.cls.datasets import IDX_FILES, write_idx
from uqseg.core.temperature import DEFAULT_BOUNDS, fit_temperature, fit_temperature_result

pytestmark = pytest.mark.usefixtures('one_thread')
MEAN, STD = 72.94, 90.02  # the demo config's ClsDataPreprocessor
N_TRAIN_FILE, NUM_VAL, N_TEST, N_MNIST, K = 40, 24, 12, 6, 10
META_KEYS = "('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'set_name')"

CONFIG = '''_base_ = ['{base}']
test_pipeline = [dict(type='PackInputs', meta_keys={meta_keys})]
train_dataloader = dict(batch_size=4, dataset=dict(data_root='{root}', num_train=8, num_val={num_val}))
val_dataloader = dict(batch_size=5, dataset={val})
test_dataloader = dict(batch_size=5, dataset=dict(datasets=[
    dict(type='FashionMNISTSplit', data_root='{root}', split='test', pipeline=test_pipeline),
    dict(type='MNIST5kCSV', set_name='mnist', data_file='{csv}', pipeline=test_pipeline)]))
{extra}
'''
VAL = "dict(data_root='{root}', num_val={num_val}, pipeline=test_pipeline)"


def _calibrate(argv):
    """``uqseg calibrate`` (the classifier's fit: the config's default_scope is mmpretrain)."""
    return invoke(['calibrate', *argv, '--debug'])


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def _model_cfg(config):
    cfg = Config.fromfile(config)
    return cfg.model.to_dict()


def _build(model_cfg, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.eval()


def _normalised(images):
    return (torch.from_numpy(images).float()[:, None] - MEAN) / STD


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """IDX files of 40 training (24 of them the val split) and 12 test images (and a copy of the
    test files in another root), a 6-row MNIST CSV.gz, and a checkpoint of the demo's ResNet_CIFAR
    with its head scaled up: the training files' labels are its argmax for about 70% of the images
    (random otherwise), so T has an interior optimum."""
    root = tmp_path_factory.mktemp('fmnist')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = _build(_model_cfg(osp.join(REPO, 'configs/cls/ce_fmnist_demo.py')))
    with torch.no_grad():
        model.head.fc.weight.mul_(1500)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (N_TRAIN_FILE, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        pred = model(_normalised(train), mode='tensor').argmax(1).numpy()
    labels = np.where(rng.random(N_TRAIN_FILE) < 0.7, pred, rng.integers(0, K, N_TRAIN_FILE)).astype(np.uint8)
    write_idx(str(root / IDX_FILES['train_images']), train)
    write_idx(str(root / IDX_FILES['train_labels']), labels)
    write_idx(str(root / IDX_FILES['test_images']), rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8))
    write_idx(str(root / IDX_FILES['test_labels']), rng.integers(0, K, N_TEST, dtype=np.uint8))
    other = tmp_path_factory.mktemp('other')  # another data root: the test files again
    for key in ('test_images', 'test_labels'):
        (other / IDX_FILES[key]).write_bytes((root / IDX_FILES[key]).read_bytes())
    csv = root / 'mnist.csv.gz'
    rows = np.concatenate([rng.integers(0, 256, (N_MNIST, 784)), rng.integers(0, K, (N_MNIST, 1))], 1)
    with gzip.open(csv, 'wt') as f:
        f.write('\n'.join(','.join(map(str, r)) for r in rows) + '\n')
    ckpt = str(root / 'model.pth')
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return dict(root=str(root), other=str(other), csv=str(csv), ckpt=ckpt)


def _config(tmp_path, data, name='cfg.py', base='ce_fmnist_demo.py', val=VAL, extra=''):
    text = CONFIG.format(base=osp.join(REPO, 'configs/cls', base), meta_keys=META_KEYS, val=val, extra=extra,
                         root='{root}', num_val=NUM_VAL, csv=data['csv'])
    path = tmp_path / name
    path.write_text(text.replace('{root}', data['root']).replace('{num_val}', str(NUM_VAL)))
    return str(path)


def _raw_outputs(config, ckpt, cfg_options=None):
    """(z, y) over the config's val loader: the model built and loaded here, each batch through its
    data_preprocessor and model(inputs, mode='tensor')."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model.to_dict())
    load_checkpoint(model, ckpt, map_location='cpu', strict=True)
    model.eval()
    zs, ys = [], []
    with torch.no_grad():
        for batch in Runner.build_dataloader(cfg.val_dataloader):
            batch = model.data_preprocessor(batch, False)
            zs.append(model(batch['inputs'], mode='tensor'))
            ys.append(torch.cat([s.gt_label for s in batch['data_samples']]))
    return torch.cat(zs), torch.cat(ys), model, cfg


def _temperature(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']['temperature']


def _pred_scores(model, cfg):
    scores, raw = [], []
    with torch.no_grad():
        for batch in Runner.build_dataloader(cfg.val_dataloader):
            batch = model.data_preprocessor(batch, False)
            raw.append(model(batch['inputs'], mode='tensor'))
            scores += [s.pred_score for s in model(batch['inputs'], batch['data_samples'], mode='predict')]
    return torch.stack(scores), torch.cat(raw)


@pytest.fixture(scope='module')
def calibrated(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('cal')
    config = _config(tmp, data)
    out = str(tmp / 'calibrated.pth')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        record = _calibrate([config, data['ckpt'], '--out', out, '--device', 'cpu',
                            '--cfg-options', 'val_dataloader.batch_size=7'])
    return config, out, record


def test_the_checkpoint_holds_the_fit_on_the_val_outputs(data, calibrated, capsys):
    config, out, record = calibrated
    z, y, _, _ = _raw_outputs(config, data['ckpt'], {'val_dataloader.batch_size': 7})
    assert z.shape == (NUM_VAL, K) and y.shape == (NUM_VAL,)
    expected = fit_temperature(z, y, max_samples=None)
    t = _temperature(out)
    assert t.dtype == torch.float32 and t.shape == ()
    torch.testing.assert_close(t, expected.float(), rtol=1e-6, atol=0)
    assert 0.05 < float(t) < 20 and abs(float(t) - 1) > 0.05  # an interior optimum, away from T = 1
    # the rest of the source checkpoint is kept
    src = torch.load(data['ckpt'], map_location='cpu', weights_only=False)['state_dict']
    dst = torch.load(out, map_location='cpu', weights_only=False)
    assert set(dst['state_dict']) == set(src) | {'temperature'}
    assert all(torch.equal(dst['state_dict'][k], v) for k, v in src.items())
    meta = dst['meta']['uqseg_temperature']
    assert meta['temperature'] == pytest.approx(float(t)) and meta['source_checkpoint'] == data['ckpt']
    assert (meta['split'], meta['method'], meta['per_class'], meta['samples']) == ('val', 'nll', False, NUM_VAL)
    # the record (returned and as <out>.json)
    with open(osp.splitext(out)[0] + '.json') as f:
        saved = json.load(f)
    for rec in (record, saved, meta):
        assert rec['bounds'] == list(DEFAULT_BOUNDS) and rec['bound_reached'] is None and 'at_bound' not in rec
    for rec in (record, saved):
        assert rec['temperature'] == pytest.approx(float(t))
        assert rec['after']['accuracy'] == rec['before']['accuracy']  # one T > 0 keeps every argmax
        assert rec['after']['NLL'] <= rec['before']['NLL']
        assert set(rec['before']) == {'accuracy', 'ECE', 'NLL', 'Brier'}
    assert record['out'] == out
    acc = float((z.argmax(1) == y).double().mean())
    assert record['before']['accuracy'] == pytest.approx(acc)
    nll = torch.nn.functional.cross_entropy(z.double(), y)
    assert record['before']['NLL'] == pytest.approx(float(nll), rel=1e-5)
    assert record['after']['NLL'] == pytest.approx(float(torch.nn.functional.cross_entropy(z.double() / t, y)),
                                                   rel=1e-5)


def test_a_temperature_scaled_classifier_applies_the_calibrated_t(data, calibrated, tmp_path):
    config, out, _ = calibrated
    scaled = _config(tmp_path, data, name='scaled.py',
                     extra="model = dict(type='TemperatureScaledImageClassifier', temperature=None)")
    cfg = Config.fromfile(scaled)
    model = MODELS.build(cfg.model.to_dict())
    load_checkpoint(model, out, map_location='cpu', strict=True)
    model.eval()
    t = _temperature(out)
    torch.testing.assert_close(model.temperature, t)
    scores, raw = _pred_scores(model, cfg)
    assert scores.shape == (NUM_VAL, K)
    torch.testing.assert_close(scores, torch.softmax(raw / t, 1))
    # raw: the plain model's outputs, untouched by T
    z, _, _, _ = _raw_outputs(config, data['ckpt'])
    torch.testing.assert_close(raw, z)


def test_the_test_split_is_refused(data, tmp_path):
    config = _config(tmp_path, data)
    out = str(tmp_path / 'x.pth')
    with pytest.raises(ValueError, match='--split test fits T on the test split'):
        _calibrate([config, data['ckpt'], '--out', out, '--split', 'test', '--device', 'cpu'])
    # a val dataset that is the config's test dataset (same type, data root and split)
    same = _config(tmp_path, data, name='val_is_test.py',
                   val="dict(data_root='{root}', split='test', pipeline=test_pipeline)")
    with pytest.raises(ValueError, match=r'the val dataset \(FashionMNISTSplit at .*fmnist.*split \'test\'\) is '
                                         r'also a test dataset'):
        _calibrate([same, data['ckpt'], '--out', out, '--device', 'cpu'])
    assert not osp.exists(out)
    # --allow-test-split fits there anyway, on the test images
    record = _calibrate([same, data['ckpt'], '--out', out, '--device', 'cpu', '--allow-test-split'])
    assert record['samples'] == N_TEST and osp.isfile(out)


def test_an_edl_head_and_a_missing_checkpoint_are_refused(data, tmp_path):
    config = _config(tmp_path, data, name='edl.py', base='edl_fmnist_demo.py')
    model = _build(_model_cfg(config))
    assert model.head.fc.output_kind == 'log_alpha'
    ckpt = str(tmp_path / 'edl.pth')
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = str(tmp_path / 'x.pth')
    with pytest.raises(ValueError, match='outputs log alpha .*temperature scaling divides logits'):
        _calibrate([config, ckpt, '--out', out, '--device', 'cpu'])
    with pytest.raises(FileNotFoundError, match='missing.pth.* does not exist'):
        _calibrate([_config(tmp_path, data), str(tmp_path / 'missing.pth'), '--out', out, '--device', 'cpu'])
    assert not osp.exists(out)


def test_ece_and_per_class_fits(data, tmp_path):
    config = _config(tmp_path, data)
    z, y, _, _ = _raw_outputs(config, data['ckpt'])
    # ECE, written next to the checkpoint by default
    ece = _calibrate([config, data['ckpt'], '--method', 'ece', '--n-bins', '5', '--device', 'cpu'])
    default = osp.splitext(data['ckpt'])[0] + '_calibrated.pth'
    assert ece['out'] == default and osp.isfile(osp.splitext(default)[0] + '.json')
    t = _temperature(default)
    assert t.shape == () and float(t) > 0 and ece['method'] == 'ece' and ece['n_bins'] == 5
    torch.testing.assert_close(t, fit_temperature(z, y, method='ece', n_bins=5, max_samples=None).float())
    assert ece['after']['ECE'] <= ece['before']['ECE']
    # per class: K temperatures, applied per column by a TemperatureScaledImageClassifier
    out = str(tmp_path / 'per_class.pth')
    per = _calibrate([config, data['ckpt'], '--per-class', '--out', out, '--device', 'cpu'])
    t = _temperature(out)
    assert t.shape == (K,) and bool((t > 0).all()) and len(per['temperature']) == K and per['per_class']
    torch.testing.assert_close(t, fit_temperature(z, y, per_class=True, max_samples=None).float(), rtol=1e-5,
                               atol=1e-6)
    assert per['after']['NLL'] <= per['before']['NLL']
    cfg = Config.fromfile(config)
    model = MODELS.build(dict(cfg.model.to_dict(), type='TemperatureScaledImageClassifier', temperature=None))
    load_checkpoint(model, out, map_location='cpu', strict=True)
    scores, raw = _pred_scores(model.eval(), cfg)
    torch.testing.assert_close(scores, torch.softmax(raw / t, 1))


def test_the_test_metrics_ood_sets_are_left_out_of_the_val_split(data, tmp_path):
    """A val loader that also reads images of the test metric's OOD set ('mnist', here the test
    files under that set name, in another data root) fits T on the in-distribution samples only."""
    val = ("dict(_delete_=True, type='ConcatDataset', ignore_keys=['classes'], datasets=["
           "dict(type='FashionMNISTSplit', data_root='{root}', split='val', num_val={num_val}, "
           "pipeline=test_pipeline), "
           f"dict(type='FashionMNISTSplit', data_root='{data['other']}', split='test', set_name='mnist', "
           "pipeline=test_pipeline)])")
    config = _config(tmp_path, data, name='val_ood.py', val=val)
    out = str(tmp_path / 'ood.pth')
    record = _calibrate([config, data['ckpt'], '--out', out, '--device', 'cpu'])
    assert record['samples'] == NUM_VAL
    z, y, _, _ = _raw_outputs(_config(tmp_path, data), data['ckpt'])
    torch.testing.assert_close(_temperature(out), fit_temperature(z, y, max_samples=None).float(), rtol=1e-6,
                               atol=0)


def _records(out):
    """The record in the checkpoint's meta and in <out>.json."""
    meta = torch.load(out, map_location='cpu', weights_only=False)['meta']['uqseg_temperature']
    with open(osp.splitext(out)[0] + '.json') as f:
        return meta, json.load(f)


def test_bounds_that_exclude_the_optimum_are_reported(data, tmp_path, capsys):
    """--bounds below the interior optimum: T is the upper bound, flagged in the returned record,
    the checkpoint's meta and the JSON, with a warning line; per class, the classes at a bound."""
    config = _config(tmp_path, data)
    z, y, _, _ = _raw_outputs(config, data['ckpt'])
    best = float(fit_temperature(z, y, max_samples=None))  # the optimum inside the default bounds
    lo, hi = best / 8, best / 2
    out = str(tmp_path / 'bounded.pth')
    capsys.readouterr()
    record = _calibrate([config, data['ckpt'], '--out', out, '--device', 'cpu', '--bounds', str(lo), str(hi)])
    printed = capsys.readouterr().out
    assert f'WARNING: temperature fit: T stopped at the upper bound {hi:g}: the NLL still falls beyond it' in printed
    assert float(_temperature(out)) == pytest.approx(hi, rel=1e-7)  # float32 in the state dict
    for rec in (record, *_records(out)):
        assert rec['bounds'] == [lo, hi] and rec['bound_reached'] == 'upper' and rec['temperature'] == pytest.approx(hi)
    # per class: which classes reached which bound, as fit_temperature_result on the same outputs says
    out = str(tmp_path / 'bounded_per_class.pth')
    record = _calibrate([config, data['ckpt'], '--out', out, '--device', 'cpu', '--per-class', '--bounds', str(lo),
                        str(hi)])
    expected = fit_temperature_result(z, y, per_class=True, max_samples=None, bounds=(lo, hi))
    assert expected.bound_reached is not None
    for rec in (record, *_records(out)):
        assert rec['at_bound'] == list(expected.at_bound) and rec['bound_reached'] == expected.bound_reached
    # inside the bounds: no warning
    capsys.readouterr()
    record = _calibrate([config, data['ckpt'], '--out', str(tmp_path / 'inside.pth'), '--device', 'cpu', '--bounds',
                        str(best / 4), str(best * 4)])
    assert record['bound_reached'] is None and 'WARNING' not in capsys.readouterr().out


@pytest.mark.parametrize('bounds', [['2', '1'], ['0', '1'], ['1', 'inf']])
def test_bad_bounds_are_refused_before_the_model_runs(data, tmp_path, bounds):
    out = str(tmp_path / 'x.pth')
    with pytest.raises(ValueError, match='--bounds must be finite with 0 < LO < HI'):
        _calibrate([_config(tmp_path, data), data['ckpt'], '--out', out, '--device', 'cpu', '--bounds', *bounds])
    assert not osp.exists(out)
