"""The model-outputs file (uqseg.core.output_files): both containers round-trip every key, float32
is read without a second copy, and every bad file is refused with its name in the message."""
import os.path as osp
import tracemalloc

import numpy as np
import pytest
import torch

from uqseg.core.output_files import ModelOutputs, load_outputs, save_outputs


def _data(n=50, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g), torch.randint(0, k, (n,), generator=g)


@pytest.mark.parametrize('ext', ['.npz', '.pt'])
def test_round_trip_keeps_every_key_and_dtype(tmp_path, ext):
    z, y = _data()
    ood = torch.randn(7, 4)
    path = str(tmp_path / f'sub/model{ext}')
    assert save_outputs(path, z, y, kind='log_alpha', ood=ood, model='resnet', classes=list('abcd')) == path
    mo = load_outputs(path)
    assert isinstance(mo, ModelOutputs)
    assert (mo.path, mo.model, mo.kind, mo.classes, mo.num_classes) == (path, 'resnet', 'log_alpha', list('abcd'), 4)
    assert mo.values.dtype == torch.float32 and torch.equal(mo.values, z)
    assert mo.labels.dtype == torch.int64 and torch.equal(mo.labels, y)
    assert torch.equal(mo.ood, ood)


def test_defaults_model_name_from_the_file_and_probs_kind(tmp_path):
    z, y = _data()
    p = z.double().softmax(1)
    path = str(tmp_path / 'vit_b.npz')
    save_outputs(path, p.numpy(), y.numpy().astype(np.int32), kind='probs')
    mo = load_outputs(path)
    assert (mo.model, mo.kind, mo.ood, mo.classes) == ('vit_b', 'probs', None, None)
    assert mo.values.dtype == torch.float64 and torch.equal(mo.values, p) and mo.labels.dtype == torch.int64
    with np.load(path) as f:
        assert 'probs' in f.files and 'logits' not in f.files


def test_a_plain_npz_without_kind_is_logits_and_half_becomes_float32(tmp_path):
    z, y = _data()
    path = str(tmp_path / 'plain.npz')
    np.savez(path, logits=z.numpy().astype(np.float16), labels=y.numpy())
    mo = load_outputs(path)
    assert mo.kind == 'logits' and mo.values.dtype == torch.float32
    assert torch.equal(mo.values, z.half().float())


def test_loading_float32_makes_no_second_copy(tmp_path):
    """numpy's allocations are traced: reading 8 MB of float32 logits allocates them once."""
    z, y = _data(n=20000, k=100)
    path = str(tmp_path / 'big.npz')
    save_outputs(path, z, y)
    tracemalloc.start()
    try:
        mo = load_outputs(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    nbytes = z.numel() * 4
    assert mo.values.dtype == torch.float32 and torch.equal(mo.values, z)
    assert nbytes <= peak < 1.3 * nbytes, (peak, nbytes)


def _npz(tmp_path, name, **arrays):
    path = str(tmp_path / name)
    np.savez(path, **arrays)
    return path


def _bad_files(tmp_path):
    z, y = _data()
    zn = z.numpy()
    nan = zn.copy()
    nan[[3, 9, 11], 1] = np.nan
    inf = zn.copy()
    inf[5, 0] = np.inf
    p = z.softmax(1).numpy()
    unnorm = p.copy()
    unnorm[4] *= 1.1
    yn = y.numpy()
    high, neg = yn.copy(), yn.copy()
    high[6] = 4
    neg[2] = -1
    return [
        (_npz(tmp_path, 'lengths.npz', logits=zn, labels=yn[:-1]), r'50 rows but labels has 49'),
        (_npz(tmp_path, 'nanrows.npz', logits=nan, labels=yn), r'3 row\(s\) hold NaN/Inf values, the first is row 3'),
        (_npz(tmp_path, 'infrow.npz', logits=inf, labels=yn), r'1 row\(s\) hold NaN/Inf values, the first is row 5'),
        (_npz(tmp_path, 'labelhigh.npz', logits=zn, labels=high), r'labels must lie in \[0, 3\].*row 6 \(label 4\)'),
        (_npz(tmp_path, 'labelneg.npz', logits=zn, labels=neg), r'row 2 \(label -1\)'),
        (_npz(tmp_path, 'labelfloat.npz', logits=zn, labels=yn.astype(np.float32)), 'integer class indices'),
        (_npz(tmp_path, 'unnorm.npz', probs=unnorm, labels=yn), r'rows must sum to 1.*first is row 4'),
        (_npz(tmp_path, 'negprob.npz', probs=-p, labels=yn), r'must lie in \[0, 1\]'),
        (_npz(tmp_path, 'nologits.npz', labels=yn), "missing key 'logits'"),
        (_npz(tmp_path, 'nolabels.npz', logits=zn), "missing key 'labels'"),
        (_npz(tmp_path, 'both.npz', logits=zn, probs=p, labels=yn), "both 'logits' and 'probs'"),
        (_npz(tmp_path, 'typo.npz', logits=zn, labels=yn, ood_logit=zn), r"unknown key\(s\) \['ood_logit'\]"),
        (_npz(tmp_path, 'kind.npz', logits=zn, labels=yn, kind='softmax'), "kind 'softmax'"),
        (_npz(tmp_path, 'probskind.npz', logits=zn, labels=yn, kind='probs'), "'logits' with kind 'probs'"),
        (_npz(tmp_path, 'oodk.npz', logits=zn, labels=yn, ood_logits=zn[:, :3]), 'has 3 classes'),
        (_npz(tmp_path, 'oodmix.npz', logits=zn, labels=yn, ood_probs=p), "'ood_probs' beside 'logits'"),
        (_npz(tmp_path, 'onecol.npz', logits=zn[:, :1], labels=yn * 0), 'K >= 2'),
        (_npz(tmp_path, 'empty.npz', logits=zn[:0], labels=yn[:0]), 'holds no sample'),
        (_npz(tmp_path, 'classes.npz', logits=zn, labels=yn, classes=np.array(['a', 'b'])), '2 names for 4 classes'),
        (_npz(tmp_path, 'pickled.npz', logits=zn, labels=np.array([None] * 50, dtype=object)), 'cannot read'),
    ]


def test_every_bad_file_is_refused_naming_it(tmp_path):
    for path, message in _bad_files(tmp_path):
        with pytest.raises(ValueError, match=message) as err:
            load_outputs(path)
        assert osp.basename(path) in str(err.value), (path, err.value)


def test_bad_containers_are_refused_naming_the_file(tmp_path):
    broken = tmp_path / 'broken.npz'
    broken.write_bytes(b'not a zip file')
    with pytest.raises(ValueError, match='broken.npz: cannot read'):
        load_outputs(str(broken))
    notdict = str(tmp_path / 'list.pt')
    torch.save([torch.zeros(2)], notdict)
    with pytest.raises(ValueError, match='list.pt: a .pt model-outputs file must hold a dict'):
        load_outputs(notdict)
    with pytest.raises(ValueError, match=r'model.csv: .* must end in .npz or .pt'):
        load_outputs(str(tmp_path / 'model.csv'))
    with pytest.raises(FileNotFoundError, match='missing.npz'):
        load_outputs(str(tmp_path / 'missing.npz'))


def test_save_refuses_what_load_would_refuse(tmp_path):
    z, y = _data()
    z[7, 2] = float('nan')
    path = str(tmp_path / 'out.pt')
    with pytest.raises(ValueError, match=r'out.pt: .*the first is row 7'):
        save_outputs(path, z, y)
    with pytest.raises(ValueError, match='kind must be one of'):
        save_outputs(path, torch.randn(3, 2), torch.zeros(3, dtype=torch.long), kind='evidence')
    assert not osp.exists(path) and not list(tmp_path.iterdir())


def test_own_score_key_round_trips_and_is_checked_against_the_kind(tmp_path):
    """``score``: the model's own score (dump_outputs writes the layer's default_score); IsoMax+'s is
    MDS, which the kind's default (MMLES) would not give."""
    z = -torch.rand(30, 4)
    y = torch.arange(30) % 4
    path = save_outputs(str(tmp_path / 'iso.npz'), z, y, kind='distance_logits', score='MDS')
    assert load_outputs(path).score == 'MDS'
    assert load_outputs(save_outputs(str(tmp_path / 'plain.npz'), z, y)).score is None
    with pytest.raises(ValueError, match=r"'score' 'vacuity' is not a score of kind 'logits' outputs"):
        save_outputs(str(tmp_path / 'bad.npz'), z, y, kind='logits', score='vacuity')
    np.savez(str(tmp_path / 'bad2.npz'), logits=z.numpy(), labels=y.numpy(), kind='log_alpha', score='MDS')
    with pytest.raises(ValueError, match=r"bad2.npz: 'score' 'MDS' is not a score of kind 'log_alpha'"):
        load_outputs(str(tmp_path / 'bad2.npz'))
