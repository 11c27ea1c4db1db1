"""``uqseg eval-selective`` and ``uqseg dump-outputs`` as commands: a refusal is one line with exit
status 1 (``--debug``: the traceback), the tools/ shims are the commands, and eval-selective follows
the package's one rule for a model's own score (the output layers' ``default_score``) and for
applying ``T`` (the temperature-scaled models' ``scale_logits``)."""
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import torch
from torch import nn

from tests.helpers.cfg import REPO
from uqseg.cli import eval_selective as ES
from uqseg.cli import invoke, main
from uqseg.core.default_scores import DEFAULT_SCORES, own_score_of
from uqseg.core.output_files import save_outputs
from uqseg.core.output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer
from uqseg.core.scores import INPUT_KINDS
from uqseg.core.selective import selective_report
from uqseg.core.temperature_buffer import TemperatureBuffer

pytestmark = pytest.mark.usefixtures('one_thread')


def _logits_file(path, seed=0, n=120, k=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    z = 2 * torch.randn(n, k, generator=g) + 2 * torch.nn.functional.one_hot(y, k)
    return save_outputs(str(path), z, y), z, y


def _main_error(argv, capsys) -> list[str]:
    """stderr lines of ``uqseg *argv``, which must exit with status 1."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 1
    return capsys.readouterr().err.splitlines()


def _shim(tool: str, argv: list[str], monkeypatch):
    """Run ``tools/<tool>.py *argv`` as a script, in this process."""
    monkeypatch.setattr(sys, 'argv', [f'tools/{tool}.py', *argv])
    runpy.run_path(osp.join(REPO, 'tools', f'{tool}.py'), run_name='__main__')


def test_a_refusal_is_one_line_with_exit_status_1(tmp_path, monkeypatch):
    """Through the console entry point in a fresh process: no traceback, one error line naming the
    file; --debug raises the error itself (its traceback)."""
    missing = str(tmp_path / 'nowhere.npz')
    res = subprocess.run([sys.executable, '-m', 'uqseg', 'eval-selective', missing], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    lines = res.stderr.splitlines()
    assert res.returncode == 1 and 'Traceback' not in res.stderr, res.stderr
    assert lines[0].startswith('uqseg eval-selective: error: ') and missing in lines[0]
    assert lines[1:] == ['uqseg eval-selective: (add --debug for the traceback)'] and res.stdout == ''
    with pytest.raises(FileNotFoundError, match='nowhere.npz'):
        _shim('eval_selective', [missing, '--debug'], monkeypatch)


def test_option_and_file_refusals_of_eval_selective_are_one_line(tmp_path, capsys):
    path, _, _ = _logits_file(tmp_path / 'm.npz')
    err = _main_error(['eval-selective', path, '--rank-by', 'AUPR'], capsys)
    assert err[0].startswith("uqseg eval-selective: error: --rank-by 'AUPR': not a metric of the report") and \
        len(err) == 2
    err = _main_error(['eval-selective', path, '--fit-temperature', '--calib-fraction', '2'], capsys)
    assert err[0] == 'uqseg eval-selective: error: --calib-fraction must lie in (0, 1), got 2.0'
    probs = save_outputs(str(tmp_path / 'p.npz'), torch.full((4, 2), 0.5), torch.tensor([0, 1, 0, 1]), kind='probs')
    err = _main_error(['eval-selective', probs, '--fit-temperature'], capsys)
    assert err[0].startswith(f'uqseg eval-selective: error: {probs}: --fit-temperature: the file holds probabilities')


def test_dump_outputs_refusals_are_one_line(tmp_path, capsys):
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': {}}, ckpt)
    out = str(tmp_path / 'o.npz')
    err = _main_error(['dump-outputs', 'cls/ce_fmnist_demo', str(tmp_path / 'missing.pth'), '--out', out], capsys)
    assert err[0] == f"uqseg dump-outputs: error: checkpoint '{tmp_path / 'missing.pth'}' does not exist"
    err = _main_error(['dump-outputs', 'no_such_config', str(ckpt), '--out', out], capsys)
    assert err[0].startswith('uqseg dump-outputs: error: no_such_config: no such config file') and len(err) == 2
    err = _main_error(['dump-outputs', '--out', out], capsys)
    assert err[0] == ('uqseg dump-outputs: error: give CONFIG and CHECKPOINT, or --torchvision NAME --weights FILE '
                      '--dataset-config FILE')
    assert not osp.exists(out)


@pytest.mark.parametrize('command,tool', [('eval-selective', 'eval_selective'), ('dump-outputs', 'dump_outputs')])
def test_help_is_the_commands_usage_and_the_shim_is_the_command(command, tool, capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        main([command, '--help'])
    text = capsys.readouterr().out
    assert e.value.code == 0 and f'usage: uqseg {command}' in text and f'    uqseg {command} ' in text
    with pytest.raises(SystemExit) as e:
        _shim(tool, ['--help'], monkeypatch)
    shim = capsys.readouterr().out
    first = text.index('\n\n') + 2  # the description and options after the usage lines
    assert e.value.code == 0 and f'usage: tools/{tool}.py' in shim and shim.endswith(text[first:])


def test_every_kind_has_one_own_score():
    assert set(DEFAULT_SCORES) == set(INPUT_KINDS)
    with pytest.raises(ValueError, match="unknown output kind 'evidence'"):
        own_score_of('evidence')
    with pytest.raises(ValueError, match="default_score='vacuity' needs an EDL layer"):
        own_score_of('logits', 'vacuity', owner='m.npz')


@pytest.mark.parametrize('layer', [EDLLayer(8, 3), EDLLayer(8, 3, evidential=False), DisMaxLayer(8, 3),
                                   IsoMaxPlusLayer(8, 3)], ids=lambda m: f'{type(m).__name__}-{m.output_kind}')
def test_own_score_is_the_output_layers_default_score(layer, tmp_path):
    """eval-selective's 'own' of a file of the layer's outputs is the layer's default_score: the one
    the file carries (dump-outputs writes it), and without one the kind's default, which is the
    layer's own except for IsoMax+ (its paper's MDS, always carried)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        z = layer(torch.randn(60, 8, generator=g))
    y = torch.randint(0, 3, (60,), generator=g)
    carried = save_outputs(str(tmp_path / 'carried.npz'), z, y, kind=layer.output_kind, score=layer.default_score)
    bare = save_outputs(str(tmp_path / 'bare.pt'), z, y, kind=layer.output_kind)
    rows = {r['file']: r for r in invoke(['eval-selective', carried, bare, '--confidence', 'own'])['rows']}
    assert rows[carried]['confidence'] == rows[carried]['own_score'] == layer.default_score
    assert rows[bare]['confidence'] == DEFAULT_SCORES[layer.output_kind]
    assert (rows[bare]['confidence'] == layer.default_score) == (not isinstance(layer, IsoMaxPlusLayer))
    assert ES.resolve_confidences(['own', 'max-prob'], layer.output_kind, None) == \
        list(dict.fromkeys([DEFAULT_SCORES[layer.output_kind], 'max-prob']))


class _Scaled(TemperatureBuffer, nn.Module):
    """The temperature of a scaled model (TemperatureScaledImageClassifier's mixin) alone."""

    def __init__(self, t, k):
        nn.Module.__init__(self)
        self.init_temperature(t, k)


def test_temperature_rows_apply_t_as_the_scaled_model_does(tmp_path):
    """The TS row is the report of the evaluation part scaled by a model holding the fitted T
    (``scale_logits``: T as its float32 buffer), to the last bit."""
    path, z, y = _logits_file(tmp_path / 'm.npz', seed=3, n=300)
    rows = invoke(['eval-selective', path, '--fit-temperature', '--seed', '5'])['rows']
    ts = next(r for r in rows if r['model'].endswith('+TS'))
    _, ev = ES.calibration_split(300, 0.1, 5)
    scaled = _Scaled(ts['T'], 4).scale_logits(z[ev])
    expected = selective_report(scaled, y[ev], confidences=('max-prob',))
    assert ts['T'] != 1.0 and ts['n'] == len(ev)
    for key in ('accuracy', 'ECE', 'NLL', 'Brier', 'AURC[max-prob]', 'AUROC[max-prob]'):
        assert ts[key] == expected[key], key


def test_progress_goes_to_stderr_and_the_table_to_stdout(tmp_path, capsys):
    a, _, _ = _logits_file(tmp_path / 'a.npz', seed=1)
    b, _, _ = _logits_file(tmp_path / 'b.npz', seed=1)
    invoke(['eval-selective', a, b])
    out, err = capsys.readouterr()
    assert err.splitlines()[0].startswith('[1/2] a: 120 x 4 logits in ') and 'rows/s' in err
    assert out.splitlines()[0].startswith('2 model(s), ranked by AURC') and '[1/2]' not in out
