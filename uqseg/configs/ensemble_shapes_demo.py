# A deep ensemble (Lakshminarayanan et al., 2017) of five plain shapes baselines (ce_shapes_demo.py
# trained with seeds 0..4), tested as one model: each sample holds the mixture of the members'
# probabilities and the member maps (mutual information, expected entropy, class variance,
# disagreement); the evaluators' own score (prefix own/) is the mutual information. No checkpoint
# argument (each member names its own):
#   uqseg test configs/ensemble_shapes_demo.py
# `uqseg train-members configs/ce_shapes_demo.py` trains such members and writes such a config.
_base_ = ['./ce_shapes_demo.py']
model = dict(
    _delete_=True,
    type='EnsembleSegmentor',
    members=[dict(config='{{ fileDirname }}/ce_shapes_demo.py',
                  checkpoint=f'work_dirs/baselines/shapes/seed{seed}/ce_shapes_demo/iter_800.pth')
             for seed in range(5)])
