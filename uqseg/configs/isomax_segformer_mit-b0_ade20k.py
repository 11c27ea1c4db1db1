# IsoMax+ (Macedo & Ludermir 2021) on the set-up of dismax_segformer_mit-b0_ade20k.py: logits -d,
# its own score MDS (the minimum distance).
#   bash tools/dist_train.sh configs/isomax_segformer_mit-b0_ade20k.py 8
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
_base_ = ['./dismax_segformer_mit-b0_ade20k.py']
model = dict(decode_head=dict(output_layer=dict(type='IsoMaxPlusLayer')))
