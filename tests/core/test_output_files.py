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


def _probability_rows(v) -> bool:
    """The definition, in float64 numpy: every value in [0, 1] and every row sum within 1e-3 of 1."""
    v = np.asarray(v, dtype=np.float64)
    return bool(np.all((v >= 0) & (v <= 1)) and np.all(np.abs(v.sum(1) - 1) <= 1e-3))


PROBS_AS_LOGITS = r"every row of 'logits' \(kind 'logits'\) lies in \[0, 1\] and sums to 1"


def test_probabilities_saved_as_logits_are_refused_unless_the_kind_is_given(tmp_path):
    z, y = _data()
    p = z.softmax(1)
    assert _probability_rows(p)
    # save: kind not given (the default 'logits') is refused; given, the file is written
    path = str(tmp_path / 'probs_as_logits.npz')
    with pytest.raises(ValueError, match=PROBS_AS_LOGITS + r".*kind 'probs'.*kind='logits'") as err:
        save_outputs(path, p, y)
    assert 'probs_as_logits.npz' in str(err.value) and not osp.exists(path)
    save_outputs(path, p, y, kind='logits')
    # load: the file's kind is a claim, refused with or without the value checks; stated, read as logits
    for check_values in (True, False):
        with pytest.raises(ValueError, match='probs_as_logits.npz: ' + PROBS_AS_LOGITS):
            load_outputs(path, check_values=check_values)
    mo = load_outputs(path, kind='logits')
    assert mo.kind == 'logits' and torch.equal(mo.values, p)
    # a plain npz without a kind, another logit kind, and OOD rows alone
    plain = _npz(tmp_path, 'plain.npz', logits=p.numpy(), labels=y.numpy())
    with pytest.raises(ValueError, match='plain.npz: ' + PROBS_AS_LOGITS):
        load_outputs(plain)
    assert load_outputs(plain, kind='logits').kind == 'logits'
    edl = _npz(tmp_path, 'edl.npz', logits=p.numpy(), labels=y.numpy(), kind='log_alpha')
    with pytest.raises(ValueError, match=r"edl.npz: every row of 'logits' \(kind 'log_alpha'\).*--kind log_alpha"):
        load_outputs(edl)
    ood = _npz(tmp_path, 'ood.npz', logits=z.numpy(), labels=y.numpy(), ood_logits=p[:9].numpy())
    with pytest.raises(ValueError, match=r"ood.npz: every row of 'ood_logits' \(kind 'logits'\)"):
        load_outputs(ood)
    # probabilities as what they are
    assert load_outputs(save_outputs(str(tmp_path / 'p.npz'), p, y, kind='probs')).kind == 'probs'


def test_logits_that_are_not_all_probability_rows_are_read(tmp_path):
    """Logits in [0, 1] whose rows do not sum to 1, rows summing to 1 with a value outside [0, 1],
    and probability rows but one (at every position, through many chunks) are logits."""
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 4, (40,), generator=g)
    unit = torch.rand(40, 4, generator=g)  # in [0, 1], rows sum to about 2
    outside = torch.tensor([[1.5, -0.5, 0.0, 0.0]]).repeat(40, 1)  # rows sum to 1
    for name, v in (('unit', unit), ('outside', outside)):
        assert not _probability_rows(v)
        assert torch.equal(load_outputs(save_outputs(str(tmp_path / f'{name}.npz'), v, y)).values, v)


@pytest.mark.parametrize('row', [0, 1, 2, 3, 6, 7, 20, 39])
def test_one_row_that_is_not_a_probability_row_makes_logits(tmp_path, monkeypatch, row):
    """The check reads rows 1, 2, 4, ... in chunks of at most 2 rows here (a 4-class chunk of 8
    values): one bad row anywhere decides, as the definition does."""
    from uqseg.core import output_files
    monkeypatch.setattr(output_files, '_CHUNK_VALUES', 8)
    g = torch.Generator().manual_seed(row)
    y = torch.randint(0, 4, (40,), generator=g)
    p = torch.randn(40, 4, generator=g).softmax(1)
    path = str(tmp_path / 'all.npz')
    with pytest.raises(ValueError, match=PROBS_AS_LOGITS):
        save_outputs(path, p, y)
    for bad in (torch.tensor([0.5, 0.6, 0.0, 0.0]), torch.tensor([1.2, -0.2, 0.0, 0.0]),
                torch.tensor([float('nan'), 0.5, 0.5, 0.0])):
        v = p.clone()
        v[row] = bad
        assert not _probability_rows(v)
        if bad.isnan().any():  # a NaN row is not read as probabilities, but refused as NaN
            with pytest.raises(ValueError, match=rf'first is row {row}'):
                save_outputs(path, v, y)
            continue
        assert torch.equal(load_outputs(save_outputs(path, v, y)).values, v)


def test_a_stated_kind_must_agree_with_the_file(tmp_path):
    z, y = _data()
    edl = save_outputs(str(tmp_path / 'edl.npz'), z, y, kind='log_alpha')
    with pytest.raises(ValueError, match=r"edl.npz: the file's kind is 'log_alpha', but kind 'logits' was stated"):
        load_outputs(edl, kind='logits')
    assert load_outputs(edl, kind='log_alpha').kind == 'log_alpha'
    with pytest.raises(ValueError, match=r"edl.npz: the stated kind must be one of .*, got 'alpha'"):
        load_outputs(edl, kind='alpha')
    plain = _npz(tmp_path, 'plain.npz', logits=z.numpy(), labels=y.numpy())  # no kind: the stated one
    assert load_outputs(plain, kind='log_alpha').kind == 'log_alpha'
    probs = _npz(tmp_path, 'probs.npz', probs=z.softmax(1).numpy(), labels=y.numpy())
    with pytest.raises(ValueError, match=r"probs.npz: 'probs' with kind 'logits'"):
        load_outputs(probs, kind='logits')
