"""Output layers inside real mmseg heads, through mmengine's Runner on the shapes demo: training in
three heads (FCN, DepthwiseSeparableASPP, SegFormer's MLP head), a plain checkpoint loaded into an
EDL head, the TEDL switch and its resume, the KL annealing across a resume, uqseg test maps."""
import json
import os

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO, shapes_cfg
from uqseg.cli import invoke
from uqseg.core.evidential import vacuity
from uqseg.core.output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer
from uqseg.engine.checkpoint import SafeCheckpointRunner

pytestmark = pytest.mark.slow

NORM = dict(type='BN', requires_grad=True)
LAYERS = {
    'EDL': (dict(type='EDLLayer', evidence='softplus'), dict(_delete_=True, type='EDLLoss', kl_anneal_iters=2)),
    'DisMax': (dict(type='DisMaxLayer'), dict(_delete_=True, type='DisMaxLoss')),
    'IsoMax+': (dict(type='IsoMaxPlusLayer'), dict(_delete_=True, type='DisMaxLoss')),
}
# the shapes model's backbone outputs (32, 64, 128, 256) channels at strides (4, 4, 8, 8)... (dilated)
HEADS = {
    'FCNHead': dict(type='FCNHead'),
    'DepthwiseSeparableASPPHead': dict(type='DepthwiseSeparableASPPHead', in_channels=256, in_index=3, channels=32,
                                       dilations=(1, 2, 3, 4), c1_in_channels=32, c1_channels=16, num_classes=4,
                                       out_channels=4, norm_cfg=NORM, align_corners=False, dropout_ratio=0.1),
    'SegformerHead': dict(type='SegformerHead', in_channels=[32, 64, 128, 256], in_index=[0, 1, 2, 3], channels=32,
                          num_classes=4, out_channels=4, norm_cfg=NORM, align_corners=False, dropout_ratio=0.1),
}


def _with_layer(cfg, layer: str, head: str):
    output_layer, loss = LAYERS[layer]
    if head != 'FCNHead':  # a head of its own: replace the base's decode_head entries
        cfg.model.decode_head = dict(HEADS[head], loss_decode=dict(type='CrossEntropyLoss'))
    loss = {k: v for k, v in loss.items() if k != '_delete_'}
    cfg.model.decode_head = dict(type='OutputLayerHead', head=dict(cfg.model.decode_head),
                                 output_layer=output_layer, loss_decode=loss)
    return cfg


@pytest.mark.parametrize('head', list(HEADS))
@pytest.mark.parametrize('layer', list(LAYERS))
def test_each_output_layer_trains_inside_each_head(shapes_root, tmp_path, layer, head):
    cfg = _with_layer(shapes_cfg(shapes_root, str(tmp_path), max_iters=3), layer, head)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    start = {k: v.clone() for k, v in model.decode_head.conv_seg.state_dict().items()}
    runner.train()
    h = model.decode_head
    assert type(h).__name__ == f'OutputLayer{head}' and type(h.conv_seg).__name__ == f'{LAYERS[layer][0]["type"]}'
    moved = [k for k, v in h.conv_seg.state_dict().items() if v.is_floating_point() and not torch.equal(v, start[k])]
    assert moved, 'the output layer did not train'
    loss = runner.message_hub.get_scalar(f'train/decode.{h.losses[0].loss_name}').current()
    assert np.isfinite(loss)
    # inference: seg_logits are the layer's channels (log alpha, or L / T <= 0)
    batch = next(iter(runner.build_dataloader(cfg.test_dataloader)))
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch)
    z = out[0].seg_logits.data
    assert z.shape[0] == 4 and torch.isfinite(z).all()
    if layer == 'EDL':
        assert z.min() >= 0
        u = vacuity(z, dim=0)
        assert (u > 0).all() and (u <= 1).all()
    else:
        assert z.max() <= 1e-5
    assert torch.equal(out[0].pred_sem_seg.data[0], z.argmax(0))


def test_plain_checkpoint_loads_into_an_edl_head(shapes_root, tmp_path):
    plain = Runner.from_cfg(shapes_cfg(shapes_root, str(tmp_path / 'ce'), max_iters=2, ckpt_interval=2))
    plain.train()
    ckpt = str(tmp_path / 'ce' / 'iter_2.pth')
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'edl'), 'configs/edl_shapes_demo.py', max_iters=1)
    cfg.load_from = ckpt
    edl = SafeCheckpointRunner.from_cfg(cfg)
    edl.load_or_resume()
    src = plain.model.decode_head.conv_seg
    dst = edl.model.decode_head.conv_seg
    assert isinstance(dst, EDLLayer) and dst.output_kind == 'log_alpha'
    assert torch.equal(dst.weight, src.weight) and torch.equal(dst.bias, src.bias)
    plain_sd, edl_sd = plain.model.state_dict(), edl.model.state_dict()
    assert set(edl_sd) - set(plain_sd) == {'decode_head.conv_seg.evidential'}
    for k in plain_sd:
        assert torch.equal(plain_sd[k], edl_sd[k]), k


def _tedl_cfg(root, work_dir, iters, switch, ckpt_interval=1000):
    cfg = shapes_cfg(root, work_dir, 'configs/tedl_shapes_demo.py', max_iters=iters, ckpt_interval=ckpt_interval)
    for h in cfg.custom_hooks:
        if h['type'] == 'TEDLHook':
            h['switch_iter'] = switch
    cfg.model.decode_head.loss_decode.kl_anneal_iters = 3
    return cfg


class _Record:
    """Each training iteration's stage, loss step and KL factor, read from the model inside it."""

    def __init__(self, runner):
        self.rows = []
        head = runner.model.decode_head
        loss = head.losses[0]
        orig = loss.forward

        def forward(*args, **kwargs):
            self.rows.append((runner.iter, bool(head.conv_seg.evidential), loss.step, loss.kl_factor()))
            return orig(*args, **kwargs)
        loss.forward = forward


def test_tedl_switches_at_the_configured_iteration_and_anneals_from_there(shapes_root, tmp_path):
    runner = Runner.from_cfg(_tedl_cfg(shapes_root, str(tmp_path), 5, switch=2))
    rec = _Record(runner)
    runner.train()
    assert [r[:2] for r in rec.rows] == [(0, False), (1, False), (2, True), (3, True), (4, True)]
    assert [r[2] for r in rec.rows] == [0, 1, 2, 3, 4]
    # the KL annealing min(1, (t - switch) / 3) starts at the switch
    assert [r[3] for r in rec.rows[2:]] == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert runner.model.decode_head.conv_seg.output_kind == 'log_alpha'


def _states_equal(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


@pytest.mark.parametrize('resume_at', [1, 3])
def test_tedl_resumed_before_or_after_the_switch_matches_the_uninterrupted_run(shapes_root, tmp_path, resume_at):
    full = Runner.from_cfg(_tedl_cfg(shapes_root, str(tmp_path / 'full'), 5, switch=2))
    full.train()
    part = Runner.from_cfg(_tedl_cfg(shapes_root, str(tmp_path / 'part'), resume_at, switch=2,
                                     ckpt_interval=resume_at))
    part.train()
    assert bool(part.model.decode_head.conv_seg.evidential) == (resume_at > 2)
    cfg = _tedl_cfg(shapes_root, str(tmp_path / 'resumed'), 5, switch=2)
    cfg.resume, cfg.load_from = True, str(tmp_path / 'part' / f'iter_{resume_at}.pth')
    resumed = SafeCheckpointRunner.from_cfg(cfg)
    rec = _Record(resumed)
    resumed.train()
    assert [r[:3] for r in rec.rows] == [(i, i >= 2, i) for i in range(resume_at, 5)]
    assert _states_equal(full, resumed) == []  # the annealing, the stage and the weights continue exactly


def test_a_plain_cross_entropy_checkpoint_starts_tedl_stage_2(shapes_root, tmp_path):
    plain = Runner.from_cfg(shapes_cfg(shapes_root, str(tmp_path / 'ce'), max_iters=2, ckpt_interval=2))
    plain.train()
    cfg = _tedl_cfg(shapes_root, str(tmp_path / 'tedl'), 2, switch=0)
    cfg.load_from = str(tmp_path / 'ce' / 'iter_2.pth')
    runner = SafeCheckpointRunner.from_cfg(cfg)
    rec = _Record(runner)
    runner.train()
    assert [r[1] for r in rec.rows] == [True, True]


def test_tedl_freezes_the_backbone_in_stage_2_when_asked(shapes_root, tmp_path):
    cfg = _tedl_cfg(shapes_root, str(tmp_path), 3, switch=1)
    next(h for h in cfg.custom_hooks if h['type'] == 'TEDLHook')['freeze_backbone'] = True
    runner = Runner.from_cfg(cfg)
    backbone = runner.model.backbone
    runner.train()
    assert not any(p.requires_grad for p in backbone.parameters())
    assert all(p.requires_grad for p in runner.model.decode_head.parameters())


def test_uqseg_test_writes_the_heads_uncertainty_maps(shapes_root, tmp_path):
    runner = Runner.from_cfg(shapes_cfg(shapes_root, str(tmp_path / 'edl'), 'configs/edl_shapes_demo.py',
                                        max_iters=2, ckpt_interval=2))
    runner.train()
    opts = ['--cfg-options'] + [f'test_dataloader.dataset.datasets.{i}.data_root={shapes_root}' for i in range(3)]
    invoke(['test', os.path.join(REPO, 'configs/edl_shapes_demo.py'), str(tmp_path / 'edl' / 'iter_2.pth'),
            '--work-dir', str(tmp_path / 't'), '--out', str(tmp_path / 'maps'), '--out-scores', 'vacuity', 'max-prob',
            *opts])
    files = sorted(os.listdir(tmp_path / 'maps' / 'shift'))
    assert len([f for f in files if f.endswith('.png')]) == 6
    assert len([f for f in files if f.endswith('_vacuity.npy')]) == 6
    u = np.load(tmp_path / 'maps' / 'shift' / files[0].replace('.png', '_vacuity.npy'))
    assert u.shape == (64, 64) and u.dtype == np.float32 and (u > 0).all() and (u <= 1).all()
    metrics = json.load(open(tmp_path / 't' / 'test_metrics.json'))
    for key in ('test/mIoU', 'shift/ECE', 'shift/NLL', 'own/test/AUROC', 'maxprob/test/AURC', 'own/ood/OOD_AUROC_px'):
        assert key in metrics, key
    # the runner's segmentor wrote the head's output into the samples: 'own' ranked by vacuity
    assert metrics['own/test/AURC'] != metrics['maxprob/test/AURC']


def test_a_score_the_head_does_not_have_is_refused_naming_it(shapes_root, tmp_path):
    cfg = shapes_cfg(shapes_root, str(tmp_path), max_iters=1)
    cfg.test_evaluator = [dict(type='PixelUncertaintyMetric', score='vacuity', ignore_index=(255, 254))]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"score='vacuity' needs an EDL layer .* a plain decode head outputs logits"):
        runner.test()
    cfg = shapes_cfg(shapes_root, str(tmp_path / 'd'), 'configs/dismax_shapes_demo.py', max_iters=1)
    cfg.custom_hooks = [dict(type='UncertaintyMapHook', scores=['vacuity'])]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"scores='vacuity' needs an EDL layer .* DisMaxLayer in OutputLayerFCNHead"):
        runner.test()


def test_layer_types_of_the_demo_configs(shapes_root, tmp_path):
    kinds = {}
    for name, cls in (('edl', EDLLayer), ('tedl', EDLLayer), ('dismax', DisMaxLayer), ('isomax', IsoMaxPlusLayer)):
        runner = Runner.from_cfg(shapes_cfg(shapes_root, str(tmp_path / name), f'configs/{name}_shapes_demo.py'))
        layer = runner.model.decode_head.conv_seg
        assert type(layer) is cls
        kinds[name] = (layer.default_score, getattr(layer, 'evidence', None))
    assert kinds == {'edl': ('vacuity', 'relu'), 'tedl': ('vacuity', 'elu'), 'dismax': ('MMLES', None),
                     'isomax': ('MDS', None)}
