"""uqseg dump-alphas: the alphas found in a state dict, alpha_max read from a config, the summary, and a
checkpoint without alphas refused in one line (the end-to-end run: tests/seg/test_aslp_training.py)."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from uqseg.cli import main
from uqseg.cli.configs import read_config
from uqseg.seg.aslp_alphas import alpha_cap, alpha_summary, find_alphas


def test_find_alphas_takes_the_1d_alpha_of_every_head():
    state = {'module.decode_head.alpha': torch.tensor([0.1, 0.2], dtype=torch.float64),
             'auxiliary_head.0.alpha': torch.tensor([0.3]),
             'decode_head.conv_seg.weight': torch.zeros(2, 2), 'backbone.alpha': torch.zeros(3),
             'decode_head.scale.alpha': torch.zeros(2, 2)}
    found = find_alphas(state)
    assert sorted(found) == ['auxiliary_head.0', 'decode_head']
    assert found['decode_head'].dtype == torch.float32
    assert found['decode_head'].tolist() == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize('cfg,expected', [
    (dict(custom_hooks=[dict(type='ASLPHook', alpha_max=0.3)], model=dict(decode_head=dict())), 0.3),
    # beta = 1.5 -> 1/1.5 - 0.01; the loss beside head=dict(...) or inside it
    (dict(model=dict(decode_head=dict(loss_decode=dict(type='SCBCELoss', perturbation=1.5)))), 1 / 1.5 - 0.01),
    (dict(model=dict(decode_head=dict(head=dict(loss_decode=[dict(type='SCBCELoss', perturbation='HI')])))), 0.49),
    (dict(model=dict(decode_head=dict(loss_decode=dict(type='CrossEntropyLoss')))), 0.49),
])
def test_alpha_cap_reads_the_hook_then_the_loss(cfg, expected):
    assert alpha_cap(Config(cfg)) == pytest.approx(expected)


def test_alpha_cap_of_the_shipped_demo_config():
    assert alpha_cap(read_config('aslp_sod_demo')) == pytest.approx(0.49)


def test_alpha_summary_counts_the_cap_and_zero():
    alpha = np.array([0.0, 0.0, 0.1, 0.49 - 5e-7, 0.49, 0.2])
    s = alpha_summary(alpha, 0.49)
    assert s['count'] == 6 and s['at_cap'] == 2 and s['share_at_cap'] == pytest.approx(2 / 6)
    assert s['share_zero'] == pytest.approx(2 / 6) and s['max'] == 0.49 and s['min'] == 0.0
    assert s['mean'] == pytest.approx(np.mean(alpha)) and s['median'] == pytest.approx(0.15)
    with pytest.raises(ValueError, match='no alphas'):
        alpha_summary(np.zeros(0), 0.49)


def test_a_checkpoint_without_alphas_is_one_line_with_exit_status_1(tmp_path, capsys):
    path = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': {'decode_head.conv_seg.weight': torch.zeros(2, 2)}, 'meta': {'iter': 1}}, path)
    with pytest.raises(SystemExit) as e:
        main(['dump-alphas', path, 'aslp_sod_demo', '--out', str(tmp_path / 'out')])
    assert e.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f'uqseg dump-alphas: error: {path}: no ASLP alphas (a "<head>.alpha" entry) in the '
                      'checkpoint; was it trained with an ASLPHead?')
    assert not any('Traceback' in line for line in err) and not osp.exists(tmp_path / 'out')
    with pytest.raises(SystemExit) as e:
        main(['dump-alphas', str(tmp_path / 'none.pth'), 'aslp_sod_demo', '--out', str(tmp_path / 'out')])
    assert e.value.code == 1 and 'none.pth' in capsys.readouterr().err.splitlines()[0]
