"""Issue 19: an OOD set without labels (mmpretrain's ``CustomDataset(with_label=False)``) runs through
mmengine's ``Runner.test`` beside a labelled in-distribution set, in batches that mix the two (before,
``ClsDataPreprocessor`` failed with "'DataSample' has no attribute 'gt_label'"), with and without the
batch augments whose one-hot targets the preprocessor also builds at test time; ``AddSetName`` gives
the unlabelled samples an empty label. The report equals sklearn's AUROC and the hand-computed accuracy
on the model's own outputs; ``collect_outputs`` / ``split_ood`` (the dump and calibration tools) split
the same way, and an unlabelled set that is not an OOD set is refused naming it."""
import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.registry import TRANSFORMS
from PIL import Image
from sklearn.metrics import roc_auc_score

import uqseg.cls  # noqa: F401  (registers AddSetName, OutputLayerClsHead, FPRMosaic, the metric)
from uqseg.cls.outputs import collect_outputs, split_ood

pytestmark = pytest.mark.usefixtures('one_thread')
K, N_PER_CLASS, N_OOD, SIDE = 3, 3, 5, 32
META_KEYS = ('sample_idx', 'img_path', 'set_name')


@pytest.fixture(scope='module')
def image_root(tmp_path_factory):
    """``id/c<k>/*.png`` (3 classes x 3 grey images, a bright band whose row is the class) and ``ood/*.png``
    (5 noise images, no class folders: an unlabelled set)."""
    root = tmp_path_factory.mktemp('unlabelled_ood')
    rng = np.random.default_rng(0)
    for k in range(K):
        (root / 'id' / f'c{k}').mkdir(parents=True)
        for i in range(N_PER_CLASS):
            img = rng.integers(0, 60, (SIDE, SIDE), dtype=np.uint8)
            img[4 + 8 * k:8 + 8 * k] = 220
            Image.fromarray(img).save(root / 'id' / f'c{k}' / f'{i}.png')
    (root / 'ood').mkdir()
    for i in range(N_OOD):
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)).save(root / 'ood' / f'{i}.png')
    return root


def _test_dataset(root, ood_set_name_after_pack=False):
    add = dict(type='AddSetName', set_name='noise')
    load, pack = dict(type='LoadImageFromFile', color_type='grayscale'), dict(type='PackInputs', meta_keys=META_KEYS)
    ood_pipeline = [load, pack, add] if ood_set_name_after_pack else [load, add, pack]
    id_pipeline = [load, dict(type='AddSetName', set_name='id'), pack]
    return dict(type='ConcatDataset', ignore_keys=['classes'], datasets=[
        dict(type='CustomDataset', data_root=str(root / 'id'), pipeline=id_pipeline),
        dict(type='CustomDataset', data_root=str(root / 'ood'), with_label=False, pipeline=ood_pipeline)])


def _model(batch_augments):
    pre = dict(type='ClsDataPreprocessor', num_classes=K, mean=[60.0], std=[60.0], to_rgb=False)
    if batch_augments:
        pre['batch_augments'] = dict(augments=dict(type='FPRMosaic'))
    return dict(type='ImageClassifier', data_preprocessor=pre, backbone=dict(type='LeNet5'),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='OutputLayerClsHead', num_classes=K, in_channels=120,
                          output_layer=dict(type='DisMaxLayer'), loss=dict(type='DisMaxLoss')))


@pytest.mark.parametrize('batch_augments', [False, True], ids=['plain', 'fpr_mosaic'])
@pytest.mark.parametrize('after_pack', [False, True], ids=['before_pack', 'after_pack'])
def test_an_unlabelled_ood_set_runs_through_runner_test(image_root, tmp_path, batch_augments, after_pack):
    # batches of 4 over 9 labelled + 5 unlabelled samples: the third batch holds both kinds, labelled first
    loader = dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  dataset=_test_dataset(image_root, after_pack))
    runner = Runner(
        model=_model(batch_augments), work_dir=str(tmp_path), test_dataloader=loader, test_cfg=dict(),
        test_evaluator=dict(type='SelectivePredictionMetric', confidences=('max-prob', ), ood_sets=('noise', )),
        experiment_name=f'unlabelled_ood_{batch_augments}_{after_pack}', default_scope='mmpretrain',
        randomness=dict(seed=0), log_level='WARNING')
    dataset = runner.test_dataloader.dataset
    assert 'gt_label' not in dataset.datasets[1].get_data_info(0)  # mmpretrain's unlabelled listing
    metrics = runner.test()

    # the reference: the model's own outputs, labels from the class folders, the OOD rows by the file's folder
    z, labels, names = collect_outputs(runner.model.eval(), runner.test_dataloader, source='test')
    assert names == ['id'] * (K * N_PER_CLASS) + ['noise'] * N_OOD
    assert labels.tolist() == [k for k in range(K) for _ in range(N_PER_CLASS)] + [-1] * N_OOD
    z_id, y_id, z_ood = split_ood(z, labels, names, ('noise', ), 'test')
    p_id, p_ood = z_id.double().softmax(1), z_ood.double().softmax(1)
    assert metrics['selective/accuracy'] == pytest.approx(float((p_id.argmax(1) == y_id).double().mean()), abs=1e-12)
    conf = torch.cat([p_id.max(1).values, p_ood.max(1).values]).numpy()
    is_id = np.r_[np.ones(len(p_id)), np.zeros(len(p_ood))]
    assert metrics['selective/OOD-AUROC[max-prob]'] == pytest.approx(roc_auc_score(is_id, conf), abs=1e-6)


def test_an_unlabelled_set_that_is_not_an_ood_set_is_refused_naming_it(image_root, tmp_path):
    loader = dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  dataset=_test_dataset(image_root))
    runner = Runner(
        model=_model(False), work_dir=str(tmp_path), test_dataloader=loader, test_cfg=dict(),
        test_evaluator=dict(type='SelectivePredictionMetric', confidences=('max-prob', )),
        experiment_name='unlabelled_not_ood', default_scope='mmpretrain', log_level='WARNING')
    with pytest.raises(ValueError, match=r"SelectivePredictionMetric: 5 in-distribution sample\(s\) have no gt_label "
                                         r"\(set 'noise'\).*listed in ood_sets"):
        runner.test()
    z, labels, names = collect_outputs(runner.model.eval(), runner.test_dataloader, source='cfg.py (test split)')
    with pytest.raises(ValueError, match=r"cfg.py \(test split\): 5 in-distribution sample\(s\) have no gt_label "
                                         r"\(set 'noise'\)"):
        split_ood(z, labels, names, (), 'cfg.py (test split)')


def test_add_set_name_gives_an_unlabelled_sample_an_empty_label_and_keeps_a_label():
    add = TRANSFORMS.build(dict(type='AddSetName', set_name='noise'))
    out = add(dict(img=np.zeros((2, 2), np.uint8)))
    assert out['set_name'] == 'noise' and out['gt_label'].shape == (0, )
    assert add(dict(gt_label=2))['gt_label'] == 2
    packed = TRANSFORMS.build(dict(type='PackInputs', meta_keys=('set_name', )))(out)
    assert packed['data_samples'].gt_label.shape == (0, ) and packed['data_samples'].set_name == 'noise'
