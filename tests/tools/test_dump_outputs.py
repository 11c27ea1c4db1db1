"""uqseg dump-outputs (uqseg.cli.dump_outputs) on a tiny mmpretrain config (LeNet5 and a narrow ResNet_CIFAR)
over IDX files in the Fashion-MNIST layout, and on a torchvision model with local weights: the dumped outputs equal
the model's own forward on the images read and normalised by hand, with the labels, kind, class
names and OOD outputs; a temperature-scaled classifier's T is applied only on request."""
import os.path as osp
import struct

import cv2
import numpy as np
import pytest
import torch
import torchvision
from mmengine.registry import DefaultScope
from mmengine.runner import save_checkpoint
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from uqseg.cli import invoke
from uqseg.cls.metrics import SelectivePredictionMetric
from uqseg.core.output_files import load_outputs

pytestmark = pytest.mark.usefixtures('one_thread')


def run_tool(argv):
    """``uqseg dump-outputs --debug *argv`` in this process: run()'s result, a refusal raised as is."""
    return invoke(['dump-outputs', '--debug', *argv])

MEAN, STD = 33.46, 78.87

CONFIG = '''
model = dict(type='ImageClassifier', backbone=dict(type='LeNet5', num_classes=10), neck=None,
             head=dict(type='ClsHead', loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
data_preprocessor = dict(mean=[{mean}], std=[{std}], num_classes=10)
pipeline = [dict(type='Resize', scale=32), dict(type='PackInputs')]
test_dataloader = dict(batch_size=5, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict(type='FashionMNIST', data_root='{root}', test_mode=True, pipeline=pipeline))
val_dataloader = dict(batch_size=7, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type='FashionMNIST', data_root='{root}', test_mode=False, pipeline=pipeline))
{extra}
default_scope = 'mmpretrain'
'''
OOD = ("ood_dataloader = dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False), "
       "dataset=dict(type='FashionMNIST', data_root='{root}', test_mode=False, pipeline=pipeline))")
RESNET = dict(type='TemperatureScaledImageClassifier', temperature=2.5,
              backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1, stem_channels=8, base_channels=8),
              neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=10, in_channels=64))


def _idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, 'wb') as f:
        f.write(struct.pack('>I', 0x0800 | array.ndim) + struct.pack(f'>{array.ndim}I', *array.shape))
        f.write(array.tobytes())


@pytest.fixture(scope='module')
def fashion(tmp_path_factory):
    """12 test and 20 train images in the four un-gzipped Fashion-MNIST files."""
    root = tmp_path_factory.mktemp('fashion_mnist')
    rng = np.random.default_rng(0)
    data = {}
    for split, n, stem in (('test', 12, 't10k'), ('train', 20, 'train')):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _idx(root / f'{stem}-images-idx3-ubyte', images)
        _idx(root / f'{stem}-labels-idx1-ubyte', labels)
        data[split] = images, labels.astype(np.int64)
    return str(root), data


def _config(tmp_path, root, extra='', name='lenet5_fmnist.py'):
    path = tmp_path / name
    text = CONFIG.replace('{mean}', str(MEAN)).replace('{std}', str(STD)).replace('{extra}', extra)
    path.write_text(text.replace('{root}', root))
    return str(path)


def _checkpoint(tmp_path, model_cfg, seed=0):
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    model.init_weights()
    path = str(tmp_path / 'model.pth')
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, path)
    return model.eval(), path


def _lenet_cfg():
    return dict(type='ImageClassifier', backbone=dict(type='LeNet5', num_classes=10),
                head=dict(type='ClsHead'), data_preprocessor=dict(mean=[MEAN], std=[STD], num_classes=10))


def _hand_inputs(images):
    """The images resized to 32 (bilinear, as mmcv) and normalised by hand."""
    x = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_LINEAR) for im in images]).astype(np.float32)
    return torch.from_numpy((x - MEAN) / STD)[:, None]


def _by_hand(model, images):
    """The model's forward on :func:`_hand_inputs`."""
    with torch.no_grad():
        return model(_hand_inputs(images), mode='tensor')


def test_dumped_logits_are_the_models_forward_with_labels_classes_and_ood(fashion, tmp_path, capsys):
    root, data = fashion
    model, ckpt = _checkpoint(tmp_path, _lenet_cfg())
    out = str(tmp_path / 'lenet.npz')
    res = run_tool([_config(tmp_path, root, OOD), ckpt, '--out', out, '--device', 'cpu'])
    assert res == dict(out=out, model='lenet5_fmnist', kind='logits', n=12, num_classes=10, n_ood=20, members=0,
                      member_scores=[])
    mo = load_outputs(out)
    assert mo.model == 'lenet5_fmnist' and mo.kind == 'logits' and mo.values.dtype == torch.float32
    assert torch.equal(mo.labels, torch.from_numpy(data['test'][1]))
    torch.testing.assert_close(mo.values, _by_hand(model, data['test'][0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mo.ood, _by_hand(model, data['train'][0]), atol=1e-5, rtol=1e-5)
    assert mo.classes[0] == 'T-shirt/top' and len(mo.classes) == 10
    assert 'wrote' in capsys.readouterr().out


def test_val_split_ood_options_and_batch_size(fashion, tmp_path):
    root, data = fashion
    model, ckpt = _checkpoint(tmp_path, _lenet_cfg(), seed=1)
    cfg = _config(tmp_path, root, OOD)
    out = str(tmp_path / 'val.pt')
    res = run_tool([cfg, ckpt, '--out', out, '--split', 'val', '--no-ood', '--batch-size', '6', '--model-name', 'm'])
    assert (res['n'], res['n_ood'], res['model']) == (20, 0, 'm')
    mo = load_outputs(out)
    assert mo.ood is None and torch.equal(mo.labels, torch.from_numpy(data['train'][1]))
    torch.testing.assert_close(mo.values, _by_hand(model, data['train'][0]), atol=1e-5, rtol=1e-5)
    # a dataset dict on the command line: read with the test loader's settings and pipeline
    spec = f"dict(type='FashionMNIST', data_root='{root}', test_mode=True)"
    run_tool([_config(tmp_path, root), ckpt, '--out', out, '--ood-dataset', spec])
    torch.testing.assert_close(load_outputs(out).ood, _by_hand(model, data['test'][0]), atol=1e-5, rtol=1e-5)
    # a key of the config holding a dataloader
    run_tool([_config(tmp_path, root), ckpt, '--out', out, '--ood-dataset', 'val_dataloader'])
    assert load_outputs(out).ood.shape == (20, 10)


def test_temperature_is_applied_only_on_request(fashion, tmp_path):
    root, data = fashion
    model, ckpt = _checkpoint(tmp_path, dict(RESNET, data_preprocessor=dict(mean=[MEAN], std=[STD], num_classes=10)))
    cfg = _config(tmp_path, root, f'model = {RESNET!r}', name='resnet_ts.py')
    raw, scaled = str(tmp_path / 'raw.npz'), str(tmp_path / 'scaled.npz')
    run_tool([cfg, ckpt, '--out', raw])
    run_tool([cfg, ckpt, '--out', scaled, '--apply-temperature'])
    expected = _by_hand(model, data['test'][0])
    torch.testing.assert_close(load_outputs(raw).values, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(load_outputs(scaled).values, expected / 2.5, atol=1e-5, rtol=1e-5)



def test_a_checkpoints_temperature_is_a_plain_warning_line(fashion, tmp_path, capsys):
    """A calibrated checkpoint's T replaces the config's with a warning: one 'warning:' line on
    stderr, not Python's file:line dump; the progress bar goes to stderr, the summary to stdout."""
    root, data = fashion
    model, ckpt = _checkpoint(tmp_path, dict(RESNET, data_preprocessor=dict(mean=[MEAN], std=[STD], num_classes=10)))
    state = torch.load(ckpt, weights_only=False)
    state['state_dict']['temperature'] = torch.tensor(1.7)
    torch.save(state, ckpt)
    cfg = _config(tmp_path, root, f'model = {RESNET!r}', name='resnet_ts.py')
    out = str(tmp_path / 'scaled.npz')
    capsys.readouterr()
    run_tool([cfg, ckpt, '--out', out, '--apply-temperature'])
    stdout, err = capsys.readouterr()
    assert any(line.startswith('warning: TemperatureScaledImageClassifier: the checkpoint holds temperature 1.7')
               for line in err.splitlines()), err
    assert 'UserWarning' not in err and '3/3' in err and 'resnet_ts.py (test split): 12 samples in 3 batches' in err
    assert 'T = 1.7' in stdout and 'wrote' in stdout and '3/3' not in stdout
    torch.testing.assert_close(load_outputs(out).values, _by_hand(model, data['test'][0]) / 1.7, atol=1e-5, rtol=1e-5)


def test_the_kind_is_the_output_layers(fashion, tmp_path):
    root, data = fashion
    edl = dict(RESNET, type='ImageClassifier', head=dict(
        type='OutputLayerClsHead', num_classes=10, in_channels=64, output_layer=dict(type='EDLLayer', evidence='relu'),
        loss=dict(type='EDLLoss')))
    edl.pop('temperature')
    model, ckpt = _checkpoint(tmp_path, dict(edl, data_preprocessor=dict(mean=[MEAN], std=[STD], num_classes=10)))
    out = str(tmp_path / 'edl.pt')
    assert run_tool([_config(tmp_path, root, f'model = {edl!r}', name='edl.py'), ckpt, '--out', out])['kind'] == \
        'log_alpha'
    mo = load_outputs(out)
    assert mo.kind == 'log_alpha'
    torch.testing.assert_close(mo.values, _by_hand(model, data['test'][0]), atol=1e-5, rtol=1e-5)


def test_an_edl_file_is_scored_as_the_model_predicts(fashion, tmp_path):
    """The log alpha an EDL model's file holds is the model's own (its predict's pred_logits, whose
    softmax is its pred_score alpha / S), the file carries the layer's default_score, and
    eval-selective's report of the file (--confidence own) is SelectivePredictionMetric's report of
    the model's predictions: one rule from the model to the ranking."""
    root, data = fashion
    edl = dict(RESNET, type='ImageClassifier', head=dict(
        type='OutputLayerClsHead', num_classes=10, in_channels=64, output_layer=dict(type='EDLLayer', evidence='exp'),
        loss=dict(type='EDLLoss')), data_preprocessor=dict(mean=[MEAN], std=[STD], num_classes=10))
    edl.pop('temperature')
    torch.manual_seed(4)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(edl)
    model.init_weights()
    with torch.no_grad():  # evidence far from zero (the init's std 0.01 leaves every alpha near 1)
        model.head.fc.weight.normal_(0, 3.0)
    ckpt = str(tmp_path / 'edl.pth')
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = str(tmp_path / 'edl.npz')
    cfg = _config(tmp_path, root, f'model = {edl!r}', name='edl_exp.py')
    run_tool([cfg, ckpt, '--out', out, '--no-ood'])
    mo = load_outputs(out)
    with torch.no_grad():
        samples = [DataSample().set_gt_label(int(c)) for c in data['test'][1]]
        preds = model.eval()(_hand_inputs(data['test'][0]), samples, mode='predict')
    z = torch.stack([p.pred_logits for p in preds])
    meta = preds[0].metainfo
    assert (mo.kind, mo.score) == (meta['output_kind'], meta['default_score']) == ('log_alpha', 'vacuity')
    torch.testing.assert_close(mo.values, z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mo.values.softmax(1), torch.stack([p.pred_score for p in preds]), atol=1e-6, rtol=1e-5)
    row = invoke(['eval-selective', out, '--confidence', 'own', 'max-prob'])['rows'][0]
    expected = SelectivePredictionMetric.calculate(z, mo.labels, meta['output_kind'], ['vacuity', 'max-prob'])
    assert row['confidence'] == 'vacuity' and row['own_score'] == 'vacuity'
    for key, value in expected.items():
        if key not in ('curves', 'reliability'):
            assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), key


def test_torchvision_model_with_local_weights(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / 'images'
    images, labels = [], []
    for c, cls in enumerate(('cat', 'dog')):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / cls / f'{i}.png'), img)
            images.append(img)
            labels.append(c)
    dataset = tmp_path / 'dataset.py'
    dataset.write_text(f"dataset = dict(type='CustomDataset', data_root='{folder}', "
                       "pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])\n")
    torch.manual_seed(0)
    ref = torchvision.models.get_model('mobilenet_v3_small', num_classes=2).eval()
    weights = str(tmp_path / 'mnv3.pth')
    torch.save(ref.state_dict(), weights)
    out = str(tmp_path / 'tv.npz')
    res = run_tool(['--torchvision', 'mobilenet_v3_small', '--weights', weights, '--dataset-config', str(dataset),
                     '--model-kwargs', 'num_classes=2', '--out', out, '--batch-size', '4'])
    assert (res['model'], res['n'], res['num_classes']) == ('mobilenet_v3_small', 6, 2)
    mo = load_outputs(out)
    assert mo.labels.tolist() == labels and mo.classes == ['cat', 'dog']
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    x = (np.stack(images)[..., ::-1] - mean) / std  # BGR (as read) -> RGB, ImageNet normalisation
    with torch.no_grad():
        expected = ref(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32)))
    torch.testing.assert_close(mo.values, expected, atol=1e-4, rtol=1e-4)


def test_bad_calls_are_refused_with_clear_errors(fashion, tmp_path):
    root, _ = fashion
    _, ckpt = _checkpoint(tmp_path, _lenet_cfg())
    cfg = _config(tmp_path, root)
    out = str(tmp_path / 'x.npz')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        run_tool([cfg, str(tmp_path / 'missing.pth'), '--out', out])
    with pytest.raises(ValueError, match='--apply-temperature needs a TemperatureScaledImageClassifier'):
        run_tool([cfg, ckpt, '--out', out, '--apply-temperature'])
    with pytest.raises(ValueError, match="--ood-dataset 'nonsense\\(': not a key of the config"):
        run_tool([cfg, ckpt, '--out', out, '--ood-dataset', 'nonsense('])
    with pytest.raises(ValueError, match="--out .*x.csv.*ends in .npz or .pt"):
        run_tool([cfg, ckpt, '--out', str(tmp_path / 'x.csv')])
    with pytest.raises(ValueError, match='give CONFIG and CHECKPOINT'):
        run_tool(['--out', out])
    with pytest.raises(ValueError, match='needs --weights'):
        run_tool(['--torchvision', 'resnet18', '--dataset-config', cfg, '--out', out])
    no_test = tmp_path / 'no_test.py'
    no_test.write_text("model = dict(type='ImageClassifier')\ndefault_scope = 'mmpretrain'\n")
    with pytest.raises(ValueError, match='no test_dataloader'):
        run_tool([str(no_test), ckpt, '--out', out])
    assert not osp.exists(out)
