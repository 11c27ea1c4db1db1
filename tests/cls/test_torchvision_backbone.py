"""TorchvisionBackbone: torchvision models with weights from a local state-dict file, checked against the same
torchvision model holding the same state dict (logits; features = the classifier's input, caught by a hook on
the reference), inside mmpretrain's ImageClassifier, and its errors."""
import numpy as np
import pytest
import torch
import torchvision
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from uqseg.cls.models.backbones import TorchvisionBackbone, classification_models, find_classifier

SMALL = 'shufflenet_v2_x0_5'  # 0.35 M parameters: for the tests of file handling


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """Build as mmpretrain configs do (default_scope='mmpretrain'), restoring the suite's mmseg scope."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def reference(name, tmp_path, seed=0, **kw):
    """A torchvision model with a seeded random initialisation, and the file holding its state dict."""
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None, **kw).eval()
    path = tmp_path / f'{name}_{seed}.pth'
    torch.save(model.state_dict(), path)
    return model, str(path)


def classifier_io(model, classifier, x):
    """The reference's logits and the input / output its final classifier module saw."""
    seen = {}
    handle = model.get_submodule(classifier).register_forward_hook(
        lambda m, args, out: seen.update(input=args[0], output=out))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    return logits, seen['input'], seen['output']


@pytest.mark.parametrize('name,classifier,width',
                         [('resnet18', 'fc', 512), ('mobilenet_v3_small', 'classifier.3', 1024)])
def test_keep_and_drop_match_torchvision_with_the_same_state_dict(tmp_path, name, classifier, width):
    ref, path = reference(name, tmp_path, num_classes=10)
    x = torch.randn(3, 3, 32, 32)
    logits, feats, out = classifier_io(ref, classifier, x)
    assert torch.equal(out, logits)  # the module found is the last operation of the model

    keep = TorchvisionBackbone(name, weights=path, classifier='keep', num_classes=10).eval()
    drop = TorchvisionBackbone(name, weights=path, num_classes=10).eval()
    assert keep.classifier_module == drop.classifier_module == classifier
    assert (keep.out_channels, drop.out_channels, drop.num_classes) == (10, width, 10)
    assert isinstance(drop.model.get_submodule(classifier), nn.Identity)
    with torch.no_grad():
        (k,), (d,) = keep(x), drop(x)
    torch.testing.assert_close(k, logits, rtol=0, atol=1e-6)
    assert d.shape == (3, width)
    torch.testing.assert_close(d, feats.flatten(1), rtol=0, atol=1e-6)


def test_a_random_model_differs_and_checkpoint_layouts_load(tmp_path):
    ref, path = reference(SMALL, tmp_path, num_classes=4)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = ref(x)
        torch.manual_seed(1)
        assert not torch.allclose(TorchvisionBackbone(SMALL, classifier='keep', num_classes=4).eval()(x)[0], want)
    state = torch.load(path, weights_only=True)
    for i, obj in enumerate(({'state_dict': state, 'meta': {}}, {'model': state},
                             {'state_dict': {f'module.{k}': v for k, v in state.items()}})):
        torch.save(obj, tmp_path / f'ckpt{i}.pth')
        b = TorchvisionBackbone(SMALL, weights=str(tmp_path / f'ckpt{i}.pth'), classifier='keep',
                                num_classes=4).eval()
        with torch.no_grad():
            torch.testing.assert_close(b(x)[0], want, rtol=0, atol=1e-6)


def test_grayscale_inputs_are_repeated_to_three_channels(tmp_path):
    ref, path = reference(SMALL, tmp_path, num_classes=4)
    gray = TorchvisionBackbone(SMALL, weights=path, classifier='keep', num_classes=4, in_channels=1).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gray(x)[0], ref(x.repeat(1, 3, 1, 1)), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r'expected \(N, 3, H, W\) inputs, got shape \(2, 1, 32, 32\) '
                                         r'\(set in_channels=1'):
        TorchvisionBackbone(SMALL, num_classes=4)(x)
    with pytest.raises(ValueError, match='in_channels must be 1 or 3'):
        TorchvisionBackbone(SMALL, in_channels=2)


def test_drop_ignores_the_files_classifier_of_another_size(tmp_path):
    ref, path = reference('resnet18', tmp_path, num_classes=1000)  # an ImageNet-shaped file
    drop = TorchvisionBackbone('resnet18', weights=path, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    _, feats, _ = classifier_io(ref, 'fc', x)
    with torch.no_grad():
        torch.testing.assert_close(drop(x)[0], feats, rtol=0, atol=1e-6)


def test_weights_errors_name_the_file_and_keys(tmp_path):
    _, path = reference(SMALL, tmp_path, num_classes=5)
    with pytest.raises(ValueError, match=r'shufflenet_v2_x0_5_0\.pth does not fit .*shape mismatches: '
                                         r'fc\.bias: \(5,\) in the file, \(10,\) in the model; fc\.weight'):
        TorchvisionBackbone(SMALL, weights=path, classifier='keep', num_classes=10)
    state = torch.load(path, weights_only=True)
    del state['conv1.0.weight']
    state['extra.weight'] = torch.zeros(1)
    torch.save(state, tmp_path / 'edited.pth')
    with pytest.raises(ValueError, match=r'edited\.pth does not fit .*missing keys: conv1\.0\.weight '
                                         r'\| unexpected keys: extra\.weight'):
        TorchvisionBackbone(SMALL, weights=str(tmp_path / 'edited.pth'), num_classes=5)
    with pytest.raises(FileNotFoundError, match=r"weights file '.*nothing\.pth' does not exist"):
        TorchvisionBackbone(SMALL, weights=str(tmp_path / 'nothing.pth'))
    torch.save({'epoch': 3}, tmp_path / 'meta.pth')
    with pytest.raises(ValueError, match=r'meta\.pth: not a state dict'):
        TorchvisionBackbone(SMALL, weights=str(tmp_path / 'meta.pth'))
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match=r'junk\.pth: cannot be read as a torch state dict'):
        TorchvisionBackbone(SMALL, weights=str(tmp_path / 'junk.pth'))


def test_bad_names_and_arguments():
    with pytest.raises(ValueError, match="unknown torchvision classification model 'resnet19'; close names: resnet18"):
        TorchvisionBackbone('resnet19')
    with pytest.raises(ValueError, match="'fasterrcnn_resnet50_fpn' is not a torchvision classification model"):
        TorchvisionBackbone('fasterrcnn_resnet50_fpn')
    with pytest.raises(ValueError, match="classifier must be 'drop' or 'keep'"):
        TorchvisionBackbone('resnet18', classifier='remove')
    with pytest.raises(ValueError, match='local file path'):
        TorchvisionBackbone('resnet18', weights_backbone='IMAGENET1K_V1')
    with pytest.raises(ValueError, match="no module 'head'"):
        TorchvisionBackbone('resnet18', classifier_module='head')
    with pytest.raises(ValueError, match="'layer1' is a Sequential, expected nn.Linear or nn.Conv2d"):
        TorchvisionBackbone('resnet18', classifier_module='layer1')
    assert 'resnet18' in classification_models() and 'vit_b_16' in classification_models()
    assert 'fasterrcnn_resnet50_fpn' not in classification_models()


@pytest.mark.parametrize('name,want', [('squeezenet1_1', 'classifier.1'), ('shufflenet_v2_x0_5', 'fc'),
                                       ('mnasnet0_5', 'classifier.1'), ('densenet121', 'classifier')])
def test_the_final_classifier_of_other_families(name, want):
    model = torchvision.models.get_model(name, weights=None, num_classes=6).eval()
    assert find_classifier(model) == want
    if name == 'squeezenet1_1':  # a 1x1 conv, then ReLU and pooling: the features are 512 pooled channels
        b = TorchvisionBackbone(name, num_classes=6).eval()
        with torch.no_grad():
            assert b(torch.randn(2, 3, 64, 64))[0].shape == (2, 512) == (2, b.out_channels)


def image_classifier(path, num_classes, init_cfg=None):
    return MODELS.build(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes, mean=[0.0] * 3, std=[1.0] * 3),
        backbone=dict(type='TorchvisionBackbone', name='resnet18', weights=path, classifier='keep',
                      num_classes=num_classes),
        head=dict(type='ClsHead', loss=dict(type='CrossEntropyLoss')),
        init_cfg=init_cfg))


def test_image_classifier_with_cls_head_predicts_torchvisions_softmax(tmp_path):
    ref, path = reference('resnet18', tmp_path, num_classes=10)
    model = image_classifier(path, 10, init_cfg=dict(type='Constant', layer='Linear', val=0.5))
    model.init_weights()  # the classifier's init_cfg runs first, then the backbone reloads its file
    torch.testing.assert_close(model.backbone.model.fc.weight, ref.fc.weight, rtol=0, atol=0)
    model.eval()
    imgs = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    samples = [DataSample().set_gt_label(i % 10) for i in range(4)]
    with torch.no_grad():
        data = model.data_preprocessor({'inputs': list(imgs), 'data_samples': samples}, False)
        preds = model(**data, mode='predict')
        want = torch.softmax(ref(imgs.float()), dim=1)
        loss = model(**data, mode='loss')
    got = torch.stack([p.pred_score for p in preds])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert [int(p.pred_label) for p in preds] == want.argmax(1).tolist()
    want_loss = torch.nn.functional.cross_entropy(torch.log(want), torch.arange(4) % 10)
    np.testing.assert_allclose(float(loss['loss']), float(want_loss), rtol=1e-5)


def test_drop_with_a_linear_head_trains_a_step(tmp_path):
    model = MODELS.build(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=3, mean=[0.0] * 3, std=[1.0] * 3),
        backbone=dict(type='TorchvisionBackbone', name=SMALL),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=1024)))
    model.init_weights()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = model.data_preprocessor({'inputs': list(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)),
                                    'data_samples': [DataSample().set_gt_label(i % 3) for i in range(4)]}, True)
    before = model.backbone.model.conv1[0].weight.detach().clone()
    loss = model(**data, mode='loss')['loss']
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.backbone.model.conv1[0].weight)
