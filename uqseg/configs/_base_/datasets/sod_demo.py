# The embedded demo data (uqseg make-demo-data writes it under data/demo): 128x128 images in
# the layouts of DUTS-TR (300, of which 60 held out for validation), DUTS-TE (100), ECSSD (60)
# and DTD (60 textures, all background). Same dataset class and transforms as the real data.
_base_ = ['./sod_duts.py']
data_root = 'data/demo'
crop_size = (128, 128)
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor', 'flip',
             'flip_direction', 'reduce_zero_label', 'sample_idx', 'set_name')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSaliencyMask'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='ReproducibleAlbu', transforms=[
        dict(type='HorizontalFlip', p=0.5),
        dict(type='RandomResizedCrop', size=crop_size, scale=(0.8, 1.0), ratio=(0.9, 1.1), p=1.0),
        dict(type='Rotate', limit=15, border_mode=0, fill=0, fill_mask=255, p=0.2),
    ]),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadSaliencyMask'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
# uqseg test --tta: the image and its mirror as two views (members: their mutual information is a score)
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=crop_size, keep_ratio=False)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadSaliencyMask')],
        [dict(type='PackSegInputs', meta_keys=meta_keys)]]),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=f'{data_root}/DUTS-TR', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=f'{data_root}/DUTS-TR', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='ConcatDataset', datasets=[
        dict(type='SODDataset', layout='DUTS-TE', data_root=f'{data_root}/DUTS-TE', pipeline=test_pipeline),
        dict(type='SODDataset', layout='ECSSD', data_root=f'{data_root}/ECSSD', pipeline=test_pipeline),
        dict(type='SODDataset', layout='DTD', data_root=f'{data_root}/DTD', ann_file='ood.txt',
             pipeline=test_pipeline),
    ]))
