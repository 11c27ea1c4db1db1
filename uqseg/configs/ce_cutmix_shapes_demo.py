# The control for LDL's augmentation: the CE baseline (ce_shapes_demo.py) with the same SegCutMix
# as the LDL configs (half of the batches) and no teacher, so the calibration comparison
# (tools/compare_calibration.py) separates what CutMix does from what the soft labels do.
#   uqseg train configs/ce_cutmix_shapes_demo.py
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./ce_shapes_demo.py']
model = dict(data_preprocessor=dict(type='BatchAugmentSegDataPreProcessor',
                                    batch_augments=[dict(type='SegCutMix', alpha=1.0, prob=0.5)]))
