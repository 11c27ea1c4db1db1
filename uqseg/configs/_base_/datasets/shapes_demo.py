# The multiclass shapes demo (uqseg make-demo-data writes it under data/demo_shapes; the generator
# is uqseg/seg/datasets/shapes_demo.py): 64x64 synthetic images in mmseg's standard layout
# (img_dir/<split>/*.png, ann_dir/<split>/*.png) with classes 0 background, 1 disk, 2 box,
# 3 triangle, textured objects on cluttered backgrounds; textures and colours overlap between the
# classes and some objects are small or faint. Splits: train (400), val (80, model selection),
# test (80, held out, same distribution), shift (80, more clutter and noise, lower contrast, a colour
# cast) and ood (60, ID objects plus one or two objects of an unseen class labelled 254, OOD_INDEX;
# 255 stays ignore_index). The method configs set num_classes=4 and the evaluators.
dataset_type = 'ShapesDataset'
data_root = 'data/demo_shapes'
crop_size = (64, 64)  # the images' own size: no resize or crop needed
# sample_idx and set_name are needed by per-image state (ASLP) and per-set metrics.
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor', 'flip',
             'flip_direction', 'reduce_zero_label', 'sample_idx', 'set_name')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]

# uqseg test --tta: the image and its mirror as two views (members: their mutual information is a score)
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs', meta_keys=meta_keys)]]),
]


def _split(name, pipeline=test_pipeline):
    return dict(type=dataset_type, data_root=data_root, set_name=name, pipeline=pipeline,
                data_prefix=dict(img_path=f'img_dir/{name}', seg_map_path=f'ann_dir/{name}'))


train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=_split('train', train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_split('val'))
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[_split('test'), _split('shift'), _split('ood')]))
