# IsoMax+ on the SOD demo (see dismax_sod_demo.py): logits -d.
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./dismax_sod_demo.py']
model = dict(decode_head=dict(output_layer=dict(type='IsoMaxPlusLayer')))
