# IsoMax+ (Macedo & Ludermir 2021) on the shapes demo: prototype distances with logits -d, entropic
# scale 10; its own score is MDS (the minimum distance).
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./dismax_shapes_demo.py']
model = dict(decode_head=dict(output_layer=dict(type='IsoMaxPlusLayer')))
