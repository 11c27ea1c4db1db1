# MC dropout (Gal & Ghahramani, 2016) of the SOD baseline: bce_sod_demo.py's one-channel (sigmoid)
# model, whose UPerNet head applies dropout_ratio=0.1 before conv_seg in training too, tested with
# T = 10 seeded dropout passes. Each pass's sigmoid map p is the two-class distribution [1 - p, p];
# each sample holds the mean foreground probability (one channel, as every SOD metric reads it) and
# the member maps; its own score is the mutual information. Trains exactly as bce_sod_demo.py:
#   uqseg test configs/mc_dropout_sod_demo.py work_dirs/bce_sod_demo/iter_1200.pth
_base_ = ['./bce_sod_demo.py']
model = dict(type='MCDropoutEncoderDecoder', passes=10, seed=0)
