"""An ensemble's model-outputs file: ``uqseg dump-outputs`` of an EnsembleClassifier config writes the
log of the mean probability and the member maps (test and OOD rows), equal to a float64 computation
from its members' own dumps; ``uqseg eval-selective`` ranks it beside the single models with its
member scores as confidences; load_outputs refuses bad member keys naming the file and key; a member
score asked of a single model's file is one error line with exit status 1."""
import os.path as osp

import numpy as np
import pytest
import torch

from tests.cls.members.conftest import demo_cfg, save_member
from uqseg.cli import invoke, main
from uqseg.core.output_files import load_outputs, save_outputs
from uqseg.core.selective import selective_report

pytestmark = pytest.mark.usefixtures('one_thread')
MAPS = ('mutual-information', 'expected-entropy', 'class-variance', 'disagreement')


@pytest.fixture(scope='module')
def dumps(fmnist_root, tmp_path_factory, module_scope):
    """Two members' dumps (the ce config, one checkpoint each) and the dump of their ensemble."""
    tmp = tmp_path_factory.mktemp('member_files')
    ce = demo_cfg('ce_fmnist_demo', fmnist_root, tmp)
    ckpts = [save_member(tmp / f'm{i}.pth', ce.model.to_dict(), i) for i in range(2)]
    ce_path = str(tmp / 'ce.py')
    ce.dump(ce_path)
    ens = demo_cfg('ensemble_fmnist_demo', fmnist_root, tmp)
    ens.model.members = [dict(config=ce_path, checkpoint=c) for c in ckpts]
    ens_path = str(tmp / 'ensemble.py')
    ens.dump(ens_path)
    files = {}
    for i, c in enumerate(ckpts):
        files[f'm{i}'] = str(tmp / f'm{i}.npz')
        invoke(['dump-outputs', ce_path, c, '--out', files[f'm{i}'], '--device', 'cpu', '--model-name', f'm{i}'])
    files['ens'] = str(tmp / 'ens.pt')
    summary = invoke(['dump-outputs', ens_path, '--out', files['ens'], '--device', 'cpu'])
    assert summary['members'] == 2 and set(MAPS) <= set(summary['member_scores'])
    return files


def _entropy(p):
    return -(p * p.log()).sum(-1)


def test_the_ensemble_file_holds_the_mean_and_the_maps_of_its_members_dumps(dumps):
    ens = load_outputs(dumps['ens'])
    members = [load_outputs(dumps[f'm{i}']) for i in range(2)]
    assert ens.kind == 'logits' and ens.score == 'mutual-information' and ens.members == 2
    assert ens.member_kinds == ('logits', 'logits') and torch.equal(ens.labels, members[0].labels)
    for rows, maps, key in ((ens.values, ens.member_scores, 'values'), (ens.ood, ens.ood_member_scores, 'ood')):
        probs = torch.stack([getattr(m, key).double().softmax(1) for m in members])
        mean = probs.mean(0)
        torch.testing.assert_close(rows.double().softmax(1), mean, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(maps['mutual-information'], _entropy(mean) - _entropy(probs).mean(0),
                                   rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(maps['disagreement'],
                                   (probs.argmax(2) != mean.argmax(1)).double().mean(0))


def test_eval_selective_ranks_the_ensemble_beside_single_models(dumps, tmp_path, capsys):
    result = invoke(['eval-selective', dumps['ens'], dumps['m0'], dumps['m1'], '--csv', str(tmp_path / 'r.csv')])
    rows = {r['model']: r for r in result['rows']}
    assert set(rows) == {'ensemble', 'm0', 'm1'} and sorted(r['rank'] for r in rows.values()) == [1, 2, 3]
    ens = load_outputs(dumps['ens'])
    ref = selective_report(ens.values, ens.labels, 'logits', ('max-prob', ) + MAPS, ood_z=ens.ood,
                           member_maps=ens.member_scores, ood_member_maps=ens.ood_member_scores)
    for c in ('max-prob', ) + MAPS:
        for m in ('AURC', 'AUROC', 'OOD-AUROC'):
            assert rows['ensemble'][f'{m}[{c}]'] == pytest.approx(ref[f'{m}[{c}]'], nan_ok=True)
    assert 'AURC[mutual-information]' not in rows['m0']
    out = capsys.readouterr().out
    assert 'member scores of 1 ensemble row(s)' in out and 'mutual-information' in out
    # ranked by the mutual information: the single models have none and rank last
    ranked = invoke(['eval-selective', dumps['m0'], dumps['ens'], '--rank-by', 'OOD-AUROC[mutual-information]'])
    assert [r['model'] for r in ranked['rows']] == ['ensemble', 'm0']


def test_a_member_score_of_a_single_models_file_is_one_error_line(dumps, capsys):
    with pytest.raises(SystemExit) as e:
        main(['eval-selective', dumps['m0'], '--confidence', 'max-prob', 'mutual-information'])
    assert e.value.code == 1
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith('[')]
    assert len(err) == 2 and err[0].startswith('uqseg eval-selective: error: ') and '--debug' in err[1]
    assert dumps['m0'] in err[0] and "'mutual-information' needs several members" in err[0]


def test_dump_outputs_without_a_checkpoint_is_for_ensembles_only(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(['dump-outputs', 'cls/ce_fmnist_demo', '--out', str(tmp_path / 'o.npz')])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith('warning:')]
    assert e.value.code == 1 and err[0] == ('uqseg dump-outputs: error: cls/ce_fmnist_demo: give its CHECKPOINT (only '
                                            'an EnsembleClassifier config, whose members name their checkpoints, '
                                            'needs none)')


def _write(path, **extra):
    z = torch.randn(4, 3)
    maps = {'mutual-information': torch.rand(4, dtype=torch.float64)}
    data = dict(logits=z.numpy(), labels=np.arange(4) % 3, kind='logits', members=2,
                **{f'member_scores/{k}': v.numpy() for k, v in maps.items()})
    data.update(extra)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return str(path)


@pytest.mark.parametrize('extra,match', [
    (dict(members=None), r"'member_scores' without 'members'"),
    (dict(members=0), r"'members' must be an int >= 1"),
    (dict(**{'member_scores/mutual-information': np.zeros(3)}), r"member_scores\['mutual-information'\] must be a "
                                                                  r'float \(N,\) map with N = 4 rows'),
    (dict(**{'member_scores/mutual-information': np.array([0, np.nan, 0, 0])}),
     r"member_scores\['mutual-information'\] holds 1 NaN/Inf value\(s\), the first at row 1"),
    (dict(**{'member_scores/confidence': np.zeros(4)}), r"member_scores\['confidence'\]='confidence' is not a score"),
    (dict(**{'ood_member_scores/mutual-information': np.zeros(2)}), r"'ood_member_scores' without OOD outputs"),
    (dict(member_kinds=np.array(['logits'])), r"'member_kinds' must be 2 kinds"),
])
def test_bad_member_keys_are_refused_naming_the_file_and_key(tmp_path, extra, match):
    path = _write(tmp_path / 'bad.npz', **extra)
    with pytest.raises(ValueError, match=match) as e:
        load_outputs(path)
    assert str(e.value).startswith(path)


def test_member_keys_round_trip_in_both_containers(tmp_path):
    z, y = torch.randn(5, 3), torch.arange(5) % 3
    maps = {'mutual-information': torch.rand(5, dtype=torch.float64), 'vacuity': torch.rand(5, dtype=torch.float64)}
    for ext in ('.npz', '.pt'):
        path = save_outputs(str(tmp_path / f'e{ext}'), z, y, members=3, member_scores=maps,
                            member_kinds=['log_alpha'] * 3, score='mutual-information')
        mo = load_outputs(path)
        assert mo.members == 3 and mo.member_kinds == ('log_alpha', ) * 3 and mo.score == 'mutual-information'
        assert list(mo.member_scores) == list(maps)
        for k, v in maps.items():
            assert torch.equal(mo.member_scores[k], v)
    plain = load_outputs(save_outputs(osp.join(tmp_path, 'plain.npz'), z, y))
    assert plain.members == 0 and plain.member_scores is None
