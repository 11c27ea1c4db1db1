"""SegCutMix (uqseg.seg.models.seg_cutmix) and BatchAugmentSegDataPreProcessor: one box, pasted from
another image of the batch into both the image and its label map, so every pixel keeps its own
label. Images here encode their label and their origin (image index and pixel position) in their
channels, so the mixed batch can be decoded and checked pixel by pixel."""
import math

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import uqseg  # noqa: F401  (registers SegCutMix, BatchAugmentSegDataPreProcessor)
from uqseg.seg.models.seg_cutmix import SegCutMix, cutmix_box

pytestmark = pytest.mark.usefixtures('one_thread')
IGN = 255


def _labels(n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    labs = torch.randint(0, 6, (n, 1, h, w), generator=g)
    labs[torch.rand(n, 1, h, w, generator=g) < 0.1] = IGN
    return labs


def _encoded_batch(n=4, h=12, w=16, seed=0):
    """Float images (N, 3, H, W): channel 0 the label, channel 1 ``1000 i + (y W + x)``, channel 2 noise;
    and SegDataSamples carrying the labels."""
    labs = _labels(n, h, w, seed)
    pos = torch.arange(h * w, dtype=torch.float32).view(h, w)
    imgs = torch.stack([torch.stack([labs[i, 0].float(), 1000 * i + pos, torch.rand(h, w) * 7])
                        for i in range(n)])
    samples = []
    for i in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=labs[i].clone())
        samples.append(s)
    return imgs, samples, labs


def _check_mixed(orig_imgs, orig_labs, mixed, samples):
    """Every pixel's label matches its image, the changed pixels of every image are one box (the same
    box for the whole batch), each pasted from one other image at the same position, and the sources
    form a permutation. Returns the box (or None when nothing changed)."""
    n, _, h, w = orig_imgs.shape
    pos = torch.arange(h * w, dtype=torch.float32).view(h, w)
    new_labs = torch.stack([s.gt_sem_seg.data for s in samples])
    assert new_labs.shape == orig_labs.shape and new_labs.dtype == orig_labs.dtype
    assert torch.equal(mixed[:, 0].long(), new_labs[:, 0])  # image and label agree at every pixel
    src = torch.div(mixed[:, 1], 1000, rounding_mode='floor').long()
    assert torch.equal(mixed[:, 1] - 1000 * src, pos.expand(n, h, w))  # pasted at the same position
    changed = src != torch.arange(n).view(n, 1, 1)
    if not changed.any():
        assert torch.equal(mixed, orig_imgs) and torch.equal(new_labs, orig_labs)
        return None
    union = changed.any(0)
    rows, cols = union.any(1).nonzero()[:, 0], union.any(0).nonzero()[:, 0]
    y1, y2, x1, x2 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    box = torch.zeros(h, w, dtype=torch.bool)
    box[y1:y2, x1:x2] = True
    sources = []
    for i in range(n):
        if changed[i].any():
            assert torch.equal(changed[i], box)  # exactly the one box
        j = int(src[i, y1, x1])
        assert torch.all(src[i][box] == j)  # the box comes from one image
        sources.append(j)
        outside = ~box
        assert torch.equal(mixed[i][:, outside], orig_imgs[i][:, outside])
        assert torch.equal(new_labs[i, 0][outside], orig_labs[i, 0][outside])
        assert torch.equal(mixed[i][:, box], orig_imgs[j][:, box])  # all channels, incl. the noise
        assert torch.equal(new_labs[i, 0][box], orig_labs[j, 0][box])
    assert sorted(sources) == list(range(n))
    return y1, y2, x1, x2


def test_prob_one_mixes_images_and_labels_consistently():
    n_mixed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        imgs, samples, labs = _encoded_batch(seed=seed)
        before = imgs.clone()
        mixed, out = SegCutMix(alpha=1.0, prob=1.0)(imgs, samples)
        assert torch.equal(imgs, before)  # the input batch itself is not written to
        assert out is samples and mixed.shape == imgs.shape
        n_mixed += _check_mixed(before, labs, mixed, out) is not None
    assert n_mixed >= 8  # an empty box or an identity permutation is rare


def test_prob_zero_and_a_batch_of_one_return_the_inputs_unchanged():
    torch.manual_seed(0)
    for _ in range(5):
        imgs, samples, labs = _encoded_batch()
        mixed, out = SegCutMix(prob=0.0)(imgs, samples)
        assert mixed is imgs and torch.equal(torch.stack([s.gt_sem_seg.data for s in out]), labs)
    imgs, samples, labs = _encoded_batch(n=1)
    for _ in range(5):
        mixed, out = SegCutMix(prob=1.0)(imgs, samples)
        assert torch.equal(mixed, imgs) and torch.equal(out[0].gt_sem_seg.data, labs[0])


def test_prob_is_the_fraction_of_mixed_batches():
    def rate(prob, trials=300):
        torch.manual_seed(1)
        hits = 0
        for _ in range(trials):
            imgs, samples, _ = _encoded_batch(n=6, h=8, w=8)
            mixed, _ = SegCutMix(alpha=1.0, prob=prob)(imgs, samples)
            hits += not torch.equal(mixed, imgs)
        return hits / trials

    full, half = rate(1.0), rate(0.5)
    assert full > 0.8
    assert half / full == pytest.approx(0.5, abs=0.12)


def test_seeded_global_generator_makes_the_mix_reproducible():
    def run(seed):
        torch.manual_seed(seed)
        imgs, samples, _ = _encoded_batch(seed=3)
        mixed, out = SegCutMix(alpha=0.7, prob=1.0)(imgs, samples)
        return mixed, torch.stack([s.gt_sem_seg.data for s in out])

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_mismatched_label_size_is_refused():
    raised = 0
    for seed in range(10):
        torch.manual_seed(seed)
        imgs, samples, _ = _encoded_batch()
        samples[1].gt_sem_seg = PixelData(data=torch.zeros(1, 6, 8, dtype=torch.long))
        try:
            SegCutMix(prob=1.0)(imgs, samples)
        except ValueError as e:
            assert 'pad both to one size' in str(e)
            raised += 1
    assert raised >= 8


@pytest.mark.parametrize('kwargs', [dict(alpha=0.0), dict(alpha=-1.0), dict(alpha=float('nan')),
                                    dict(prob=-0.1), dict(prob=1.5), dict(prob=float('nan'))])
def test_bad_alpha_or_prob_is_refused(kwargs):
    with pytest.raises(ValueError, match='alpha|prob'):
        SegCutMix(**kwargs)


def test_cutmix_box_lies_in_the_image_with_area_one_minus_lam():
    h, w = 37, 52
    g = torch.Generator().manual_seed(0)
    unclipped = 0
    for lam in (0.1, 0.5, 0.75, 0.9, 0.99):
        side_h, side_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        for _ in range(40):
            y1, y2, x1, x2 = cutmix_box(h, w, lam, generator=g)
            assert 0 <= y1 <= y2 <= h and 0 <= x1 <= x2 <= w
            assert y2 - y1 <= side_h and x2 - x1 <= side_w
            cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
            if y1 > 0 and y2 < h and x1 > 0 and x2 < w:  # not clipped: the full box, centred
                unclipped += 1
                area = (y2 - y1) * (x2 - x1)
                # sides are even (centre +- half a side): at most one pixel short of each side
                assert (side_h - 1) * (side_w - 1) <= area <= side_h * side_w
                assert area == pytest.approx((1 - lam) * h * w, rel=0.25 if lam < 0.95 else 0.6)
                assert 0 < cy < h and 0 < cx < w
    assert unclipped > 50
    # a generator makes it reproducible
    assert cutmix_box(h, w, 0.5, torch.Generator().manual_seed(3)) == \
        cutmix_box(h, w, 0.5, torch.Generator().manual_seed(3))


def test_cutmix_box_centre_is_uniform():
    g = torch.Generator().manual_seed(1)
    h, w = 40, 40
    centres = []
    for _ in range(400):  # lam = 1: a zero-size box at the centre itself
        y1, y2, x1, x2 = cutmix_box(h, w, 1.0, generator=g)
        assert y1 == y2 and x1 == x2
        centres.append((y1, x1))
    ys = torch.tensor([c[0] for c in centres], dtype=torch.float64)
    xs = torch.tensor([c[1] for c in centres], dtype=torch.float64)
    assert ys.min() >= 0 and ys.max() <= h - 1
    assert float(ys.mean()) == pytest.approx((h - 1) / 2, abs=2.5)
    assert float(xs.mean()) == pytest.approx((w - 1) / 2, abs=2.5)
    assert float((ys < h / 2).double().mean()) == pytest.approx(0.5, abs=0.1)


# ---------------------------------------------------------------------------------------------
# BatchAugmentSegDataPreProcessor
# ---------------------------------------------------------------------------------------------
MEAN, STD = [10.0, 20.0, 30.0], [2.0, 4.0, 0.5]


def _uint8_batch(n=4, h=10, w=14, sizes=None):
    """uint8 CHW images: channel 0 the label, channel 1 ``20 i + (y + x) % 20``, channel 2 ``5 i``."""
    sizes = sizes or [(h, w)] * n
    imgs, samples, labs = [], [], []
    for i, (hh, ww) in enumerate(sizes):
        lab = _labels(1, hh, ww, seed=i)[0]
        yy, xx = torch.meshgrid(torch.arange(hh), torch.arange(ww), indexing='ij')
        img = torch.stack([lab[0], 20 * i + (yy + xx) % 20, torch.full((hh, ww), 5 * i)]).to(torch.uint8)
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=lab.clone())
        imgs.append(img)
        samples.append(s)
        labs.append(lab)
    return imgs, samples, labs


def _preprocessor(**kw):
    from mmseg.registry import MODELS
    kw.setdefault('size', (10, 14))  # mmseg pads training batches to a size (or a size divisor)
    return MODELS.build(dict(type='BatchAugmentSegDataPreProcessor', mean=MEAN, std=STD, **kw))


def _raw(out):
    """Undo the normalisation: the uint8 values as floats."""
    return out['inputs'] * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)


def test_preprocessor_builds_the_augments_from_dicts():
    pre = _preprocessor(batch_augments=[dict(type='SegCutMix', alpha=0.5, prob=1.0)])
    assert callable(pre.batch_augments)
    (aug,) = pre.batch_augments.augments
    assert isinstance(aug, SegCutMix) and aug.alpha == 0.5 and aug.prob == 1.0
    single = _preprocessor(batch_augments=dict(type='SegCutMix', prob=0.25))
    assert [a.prob for a in single.batch_augments.augments] == [0.25]
    assert _preprocessor().batch_augments is None
    ready = SegCutMix(prob=0.3)
    assert _preprocessor(batch_augments=[ready]).batch_augments.augments == [ready]


def test_preprocessor_mixes_in_training_consistently():
    pre = _preprocessor(batch_augments=[dict(type='SegCutMix', prob=1.0)])
    n_mixed = 0
    for seed in range(8):
        torch.manual_seed(seed)
        imgs, samples, labs = _uint8_batch()
        out = pre(dict(inputs=imgs, data_samples=samples), training=True)
        raw = torch.round(_raw(out)).long()
        new_labs = torch.stack([s.gt_sem_seg.data for s in out['data_samples']])
        assert raw.shape == (4, 3, 10, 14) and new_labs.shape == (4, 1, 10, 14)
        assert torch.equal(raw[:, 0], new_labs[:, 0])  # image and label agree at every pixel
        src = torch.div(raw[:, 2], 5, rounding_mode='floor')
        yy, xx = torch.meshgrid(torch.arange(10), torch.arange(14), indexing='ij')
        assert torch.equal(raw[:, 1], 20 * src + (yy + xx) % 20)  # pasted at the same position
        orig = torch.stack([torch.stack([labs[i][0], 20 * i + (yy + xx) % 20, torch.full((10, 14), 5 * i)])
                            for i in range(4)])
        changed = src != torch.arange(4).view(4, 1, 1)
        assert torch.equal(raw[~changed.unsqueeze(1).expand_as(raw)],
                           orig[~changed.unsqueeze(1).expand_as(orig)])
        for i in range(4):
            j = src[i]
            assert torch.equal(new_labs[i, 0], torch.stack(labs)[j, 0, yy, xx])
        n_mixed += bool(changed.any())
    assert n_mixed >= 5


def test_preprocessor_mixes_padded_batches_of_different_sizes():
    pre = _preprocessor(batch_augments=[dict(type='SegCutMix', prob=1.0)], pad_val=0, seg_pad_val=IGN)
    for seed in range(6):
        torch.manual_seed(seed)
        imgs, samples, _ = _uint8_batch(sizes=[(10, 14), (8, 14), (10, 9)])
        out = pre(dict(inputs=imgs, data_samples=samples), training=True)
        new_labs = torch.stack([s.gt_sem_seg.data for s in out['data_samples']])
        assert out['inputs'].shape == (3, 3, 10, 14) and new_labs.shape == (3, 1, 10, 14)
        x = out['inputs']
        pad = torch.all(x == 0, 1)  # padded pixels: 0 after normalisation, label seg_pad_val
        real = torch.round(_raw(out)).long()
        assert torch.equal(new_labs[:, 0][pad], torch.full((int(pad.sum()),), IGN))
        assert torch.equal(real[:, 0][~pad], new_labs[:, 0][~pad])


def test_preprocessor_does_not_mix_outside_training():
    pre = _preprocessor(batch_augments=[dict(type='SegCutMix', prob=1.0)])
    for seed in range(4):
        torch.manual_seed(seed)
        imgs, samples, labs = _uint8_batch()
        out = pre(dict(inputs=imgs, data_samples=samples), training=False)
        mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
        expected = (torch.stack(imgs).float() - mean) / std
        assert torch.allclose(out['inputs'], expected)
        assert torch.equal(torch.stack([s.gt_sem_seg.data for s in out['data_samples']]), torch.stack(labs))
