"""``uqseg configs``: the shipped configs are listed, found by name, copied with their bases; a
config that needs a missing optional package says which extra installs it."""
from __future__ import annotations

import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from uqseg.cli import invoke
from uqseg.cli.configs import CONFIG_ROOT, config_closure, copy_configs, list_configs, read_config, shipped_config
from uqseg.optional import missing_message, require


def test_every_shipped_config_is_listed_and_found_by_name():
    names = list_configs()
    on_disk = sorted(osp.relpath(osp.join(d, f), CONFIG_ROOT)[:-3] for d, _, fs in os.walk(CONFIG_ROOT)
                     for f in fs if f.endswith('.py') and '_base_' not in d.split(os.sep))
    assert names == on_disk and 'aslp_sod' in names and 'cls/ce_fmnist_demo' in names
    for name in ('aslp_sod', 'aslp_sod.py', 'configs/aslp_sod.py', 'cls/ce_fmnist_demo'):
        assert osp.isfile(shipped_config(name))
    with pytest.raises(FileNotFoundError, match='aslp_sod_demo'):
        shipped_config('aslp_sod_dem')  # a near miss names the candidates
    with pytest.raises(FileNotFoundError, match='no shipped config'):
        shipped_config('../pyproject')


def test_copy_keeps_the_layout_so_the_bases_resolve(tmp_path):
    dest = tmp_path / 'cfgs'
    written = invoke(['configs', 'copy', 'aslp_sod_demo', str(dest)])
    assert sorted(osp.relpath(w, dest) for w in written) == sorted(
        osp.relpath(f, CONFIG_ROOT) for f in config_closure(shipped_config('aslp_sod_demo')))
    assert (dest / '_base_' / 'models' / 'r18_half_binary.py').is_file()
    (tmp_path / 'mine.py').write_text("_base_ = ['./cfgs/aslp_sod_demo.py']\ntrain_cfg = dict(max_iters=7)\n")
    mine, shipped = Config.fromfile(str(tmp_path / 'mine.py')), Config.fromfile(shipped_config('aslp_sod_demo'))
    assert mine.train_cfg.max_iters == 7 and mine.model.to_dict() == shipped.model.to_dict()


def test_copy_refuses_to_overwrite_a_changed_file_unless_forced(tmp_path):
    copy_configs(['bce_sod_demo'], str(tmp_path))
    target = tmp_path / 'bce_sod_demo.py'
    target.write_text('# my edits\n')
    with pytest.raises(FileExistsError, match='bce_sod_demo.py'):
        copy_configs(['bce_sod_demo'], str(tmp_path))
    assert target.read_text() == '# my edits\n'  # nothing lost
    copy_configs(['bce_sod_demo'], str(tmp_path), force=True)
    assert target.read_text() == open(shipped_config('bce_sod_demo')).read()


def test_a_config_needing_a_missing_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'mmpretrain', None)  # mmpretrain not importable in this test
    with pytest.raises(ImportError, match=r'needs mmpretrain, which is not installed: pip install "uqseg\[cls\]"'):
        read_config('cls/ce_fmnist_demo')
    with pytest.raises(ImportError, match=r'pip install "uqseg\[cls\]"'):
        require('mmpretrain', 'uqseg.cls')
    assert missing_message('nosuchpkg', 'X') == 'X needs nosuchpkg, which is not installed: pip install nosuchpkg'
    cfg = tmp_path / 'scoped.py'
    cfg.write_text("default_scope = 'nosuchpkg'\n")
    with pytest.raises(ImportError, match='nosuchpkg'):
        read_config(str(cfg))
    assert read_config('aslp_sod_demo').model.decode_head.type == 'ASLPHead'


def test_a_user_error_is_one_line_with_exit_status_1_and_debug_shows_the_traceback(tmp_path):
    cmd = [sys.executable, '-m', 'uqseg', 'configs', 'copy', 'no_such_config', str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0] == ('uqseg configs: error: no_such_config: no such config file, and no shipped config of that '
                        'name; "uqseg configs list" lists them') and len(lines) == 2 and 'Traceback' not in out.stderr
    out = subprocess.run(cmd + ['--debug'], capture_output=True, text=True)
    assert out.returncode == 1 and 'Traceback' in out.stderr and 'FileNotFoundError' in out.stderr
