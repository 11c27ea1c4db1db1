# MC dropout (Gal & Ghahramani, 2016) of the plain shapes baseline: ce_shapes_demo.py's model
# (its FCN head applies dropout_ratio=0.1 before conv_seg, in training too) tested with T = 10
# seeded dropout passes; each sample holds their mixture and the member maps (mutual information,
# expected entropy, class variance, disagreement), and the evaluators' own score (prefix own/) is
# the mutual information. It trains exactly as ce_shapes_demo.py, and its checkpoints load into it:
#   uqseg test configs/mc_dropout_shapes_demo.py work_dirs/ce_shapes_demo/iter_800.pth
_base_ = ['./ce_shapes_demo.py']
model = dict(type='MCDropoutEncoderDecoder', passes=10, seed=0)
