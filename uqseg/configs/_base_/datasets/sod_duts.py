# Salient object detection data: DUTS-TR (minus a held-out part) for training, the held-out
# DUTS-TR part for validation, and DUTS-TE, ECSSD, HKU-IS, DUT-OMRON, PASCAL-S, SOD plus 500 DTD
# textures (all-background, out-of-distribution) for testing. Folder layout: README "Data
# preparation"; the split files come from tools/make_sod_split.py.
dataset_type = 'SODDataset'
data_root = 'data/sod'
crop_size = (384, 384)
# sample_idx and set_name are needed by per-image state (ASLP) and per-set metrics.
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor', 'flip',
             'flip_direction', 'reduce_zero_label', 'sample_idx', 'set_name')
# The reference augmentation (ASLP public code): flip, a small random crop, and a +-15 degree
# rotation with probability 0.2 (rotated-in corners are ignore_index=255 in the mask).
albu_transforms = [
    dict(type='HorizontalFlip', p=0.5),
    dict(type='RandomResizedCrop', size=crop_size, scale=(0.8, 1.0), ratio=(0.9, 1.1), p=1.0),
    dict(type='Rotate', limit=15, border_mode=0, fill=0, fill_mask=255, p=0.2),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSaliencyMask'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='ReproducibleAlbu', transforms=albu_transforms),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadSaliencyMask'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]


def _test_set(layout, root, **kwargs):
    return dict(type=dataset_type, layout=layout, data_root=f'{data_root}/{root}', pipeline=test_pipeline,
                **kwargs)


train_dataloader = dict(
    batch_size=10,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, layout='DUTS-TR', data_root=f'{data_root}/DUTS-TR', ann_file='train.txt',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, layout='DUTS-TR', set_name='DUTS-TR-val', data_root=f'{data_root}/DUTS-TR',
                 ann_file='val.txt', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[
        _test_set('DUTS-TE', 'DUTS-TE'),
        _test_set('ECSSD', 'ECSSD'),
        _test_set('HKU-IS', 'HKU-IS'),
        _test_set('DUT-OMRON', 'DUT-OMRON'),
        _test_set('PASCAL-S', 'PASCAL-S'),
        _test_set('SOD', 'SOD'),
        _test_set('DTD', 'dtd', ann_file='ood500.txt'),
    ]))
# Validation: pixel accuracy at p > 0.5 (ASLP's Acc_val), calibration and the SOD scores.
val_evaluator = [dict(type='PixelAccuracyMetric'), dict(type='PixelCalibrationMetric', n_bins=10),
                 dict(type='SODMetric')]
# Test: pixel accuracy at p > 0.5, pooled and per-image calibration with NLL/Brier, misclassification detection from the
# max-probability map, DTD-vs-ID OOD detection and the SOD scores; reliability diagrams and
# risk-coverage curves go to <work_dir>/<timestamp>/uq_plots/.
test_evaluator = [
    dict(type='PixelAccuracyMetric'),
    dict(type='PixelCalibrationMetric', n_bins=10, per_image=True, nll_brier=True, plot=True),
    dict(type='PixelUncertaintyMetric', plot=True),
    dict(type='OODDetectionMetric', ood_sets=['DTD']),
    dict(type='SODMetric'),
]
