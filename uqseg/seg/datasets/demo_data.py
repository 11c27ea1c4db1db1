"""A small synthetic SOD data set laid out exactly like DUTS, ECSSD and DTD, made in seconds.

Each image is 128x128: a cluttered background (smooth colour noise, random low-contrast blobs and
strokes) with one or two salient objects (ellipses, polygons, rings) that carry a saturated
texture (stripes, checks or dots) and an anti-aliased, hence soft-edged, 0-255 mask. Some
background blobs share the objects' colours at lower contrast, some objects are faint, and 40% of
the images hold a smaller textured distractor that is not salient, so a model is not certain
everywhere; the demo model (``configs/bce_sod_demo.py``) ends overconfident on the shifted test
sets, the regime ASLP targets. The texture set (DTD layout) holds texture-only images with no
salient object. Deterministic for a given seed.
"""
from __future__ import annotations

import os
import os.path as osp

import cv2
import numpy as np

from .splits import holdout_split, write_split

SIZE = 128
_SS = 4  # supersampling factor for anti-aliased (soft) mask edges


def smooth_noise(rng: np.random.Generator, size: int, scale: int, channels: int = 3) -> np.ndarray:
    """``(size, size, channels)`` float32 noise in [0, 1], smooth over about ``scale`` pixels."""
    small = rng.random((max(2, size // scale), max(2, size // scale), channels)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def texture(rng: np.random.Generator, size: int, kind: str, c1, c2,
            period: tuple[float, float] = (5, 14)) -> np.ndarray:
    """A ``(size, size, 3)`` float32 texture blending colours ``c1`` and ``c2``.

    ``kind`` is one of 'stripes', 'checks', 'dots', 'waves' or 'noise' (smooth blobs); the
    orientation and the period (drawn from the range ``period``, in pixels) are random.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(*period)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    if kind == 'stripes':
        t = (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    elif kind == 'checks':
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif kind == 'dots':
        t = ((np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)) > 0.3).astype(np.float32)
    elif kind == 'waves':
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (u + 4 * np.sin(2 * np.pi * v / (3 * period))) / period)
    else:  # 'noise'
        t = smooth_noise(rng, size, int(rng.integers(2, 6)), 1)[..., 0]
    t = t[..., None]
    return t * np.asarray(c1, np.float32) + (1 - t) * np.asarray(c2, np.float32)


def saturated_colour(rng: np.random.Generator, hue: tuple[int, int] = (0, 180),
                     sat: tuple[int, int] = (170, 256), val: tuple[int, int] = (150, 256)) -> np.ndarray:
    """A random BGR colour in [0, 1] (float32), drawn in OpenCV's HSV space (hue 0-179).

    ``hue``, ``sat`` and ``val`` are half-open ranges; a hue range may run past 180 and wraps
    round (``(170, 190)`` is red). The defaults give any hue, saturated and bright.
    """
    hsv = np.uint8([[[rng.integers(*hue) % 180, rng.integers(*sat), rng.integers(*val)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32) / 255


def _shape_mask(rng: np.random.Generator, size: int, scale: float = 1.0) -> np.ndarray:
    """A random shape rendered at _SS x resolution and area-downsampled: values in [0, 1]."""
    big = np.zeros((size * _SS, size * _SS), np.uint8)
    cx, cy = rng.uniform(0.3, 0.7, 2) * size * _SS
    r = rng.uniform(0.12, 0.3) * scale * size * _SS
    kind = rng.choice(['ellipse', 'polygon', 'ring'], p=[0.45, 0.4, 0.15])
    if kind == 'ellipse':
        axes = (int(r), int(r * rng.uniform(0.45, 1.0)))
        cv2.ellipse(big, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    elif kind == 'polygon':
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * rng.uniform(0.6, 1.2, k)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(big, [pts], 255)
    else:
        cv2.circle(big, (int(cx), int(cy)), int(r), 255, -1)
        cv2.circle(big, (int(cx), int(cy)), int(r * rng.uniform(0.35, 0.6)), 0, -1)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def make_sod_sample(rng: np.random.Generator, size: int = SIZE, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One (BGR uint8 image, uint8 0-255 soft mask) pair.

    ``shift`` in [0, 1] moves the distribution away from the training one, as the SOD test sets
    differ from DUTS-TR: more and larger distractors, fainter objects, more noise.
    """
    bg = 0.35 + 0.3 * smooth_noise(rng, size, int(rng.integers(8, 32)))
    bg = bg * rng.uniform(0.6, 1.0, 3).astype(np.float32)
    for _ in range(int(rng.integers(3, 8 + round(4 * shift)))):  # low-contrast clutter, sometimes in object colours
        blob = _shape_mask(rng, size)[..., None] * rng.uniform(0.25, 0.6)
        colour = saturated_colour(rng) if rng.random() < 0.5 else rng.random(3).astype(np.float32)
        bg = bg * (1 - blob) + colour * blob
    for _ in range(int(rng.integers(2, 6))):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(bg, tuple(int(v) for v in p1), tuple(int(v) for v in p2),
                 tuple(float(v) for v in rng.random(3)), int(rng.integers(1, 4)))
    img = bg
    mask = np.zeros((size, size), np.float32)
    n_salient = 1 if rng.random() < 0.75 else 2
    # Distractors: textured objects like the salient ones but smaller on average and not in the
    # mask. Sizes overlap, so which object is salient is partly ambiguous, as in real SOD data; a
    # model that memorises its training images becomes overconfident on such cases.
    n_distractors = int(rng.random() < 0.4 + 0.4 * shift)
    for k in range(n_distractors + n_salient):  # distractors first: salient objects stay visible
        salient = k >= n_distractors
        m = _shape_mask(rng, size, scale=1.0 if salient else 0.7 + 0.3 * shift)
        while salient and (m >= 0.5).sum() < 40:  # no sliver-thin salient objects
            m = _shape_mask(rng, size)
        tex = texture(rng, size, str(rng.choice(['stripes', 'checks', 'dots', 'waves'])),
                      saturated_colour(rng), saturated_colour(rng) * rng.uniform(0.2, 0.7))
        strength = rng.uniform(0.55 - 0.2 * shift, 1.0)  # faint objects make the task uncertain
        a = (m * strength)[..., None]
        img = img * (1 - a) + tex * a
        if salient:
            mask = np.maximum(mask, m)
    img = img + rng.normal(0, 0.03 + 0.03 * shift, img.shape).astype(np.float32)
    img8 = (img.clip(0, 1) * 255).round().astype(np.uint8)
    return img8, (mask * 255).round().astype(np.uint8)


def make_texture_sample(rng: np.random.Generator, kind: str, size: int = SIZE) -> np.ndarray:
    img = texture(rng, size, kind, saturated_colour(rng), saturated_colour(rng) * rng.uniform(0.2, 0.8))
    img = img * (0.7 + 0.3 * smooth_noise(rng, size, 16)) + rng.normal(0, 0.03, (size, size, 3))
    return (img.clip(0, 1) * 255).round().astype(np.uint8)


def _write_pairs(rng, img_dir: str, mask_dir: str, prefix: str, n: int, img_suffix: str = '.jpg',
                 shift: float = 0.0) -> list[str]:
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(mask_dir, exist_ok=True)
    names = []
    for i in range(n):
        name = f'{prefix}_{i:05d}'
        img, mask = make_sod_sample(rng, shift=shift)
        cv2.imwrite(osp.join(img_dir, name + img_suffix), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(osp.join(mask_dir, name + '.png'), mask)
        names.append(name)
    return names


def make_demo_data(root: str, n_train: int = 300, n_val: int = 60, n_test: int = 100,
                   n_test2: int = 60, n_ood: int = 60, seed: int = 0) -> dict[str, str]:
    """Write the demo data under ``root`` and return the folder of each set.

    Layout (the same as the real data, see README "Data preparation")::

        root/DUTS-TR/DUTS-TR-Image/*.jpg, DUTS-TR-Mask/*.png, train.txt, val.txt
        root/DUTS-TE/DUTS-TE-Image/*.jpg, DUTS-TE-Mask/*.png
        root/ECSSD/images/*.jpg, ground_truth_mask/*.png
        root/DTD/images/<category>/*.jpg, ood.txt

    ``n_train + n_val`` images go to DUTS-TR, of which ``n_val`` are held out in ``val.txt``.
    As the real test sets differ from DUTS-TR, the demo's do too: DUTS-TE is drawn with
    ``shift=0.5`` and ECSSD with ``shift=1.0`` (see :func:`make_sod_sample`).
    """
    rng = np.random.default_rng(seed)
    out = {k: osp.join(root, k) for k in ('DUTS-TR', 'DUTS-TE', 'ECSSD', 'DTD')}
    names = _write_pairs(rng, osp.join(out['DUTS-TR'], 'DUTS-TR-Image'),
                         osp.join(out['DUTS-TR'], 'DUTS-TR-Mask'), 'sun_demo', n_train + n_val)
    train, val = holdout_split(names, n_val, seed=seed)
    write_split(osp.join(out['DUTS-TR'], 'train.txt'), train)
    write_split(osp.join(out['DUTS-TR'], 'val.txt'), val)
    _write_pairs(rng, osp.join(out['DUTS-TE'], 'DUTS-TE-Image'), osp.join(out['DUTS-TE'], 'DUTS-TE-Mask'),
                 'ILSVRC2012_demo', n_test, shift=0.5)
    _write_pairs(rng, osp.join(out['ECSSD'], 'images'), osp.join(out['ECSSD'], 'ground_truth_mask'),
                 'ecssd', n_test2, shift=1.0)
    kinds = ['stripes', 'checks', 'dots', 'waves', 'noise']
    ood = []
    for i in range(n_ood):
        kind = kinds[i % len(kinds)]
        name = f'{kind}/{kind}_{i:04d}'
        path = osp.join(out['DTD'], 'images', name + '.jpg')
        os.makedirs(osp.dirname(path), exist_ok=True)
        cv2.imwrite(path, make_texture_sample(rng, kind), [cv2.IMWRITE_JPEG_QUALITY, 95])
        ood.append(name)
    write_split(osp.join(out['DTD'], 'ood.txt'), sorted(ood))
    return out
