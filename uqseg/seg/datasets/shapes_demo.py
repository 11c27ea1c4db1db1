"""A small synthetic multiclass segmentation data set ("shapes") in mmseg's standard layout.

Each image is 64x64: a cluttered background (smooth colour noise, low-contrast blobs, some of them
textured, and strokes, often in the objects' colours) with one to three textured objects of
three classes, ``1 'disk'`` (ellipses), ``2 'box'`` (rotated rectangles and squares) and
``3 'triangle'``; ``0`` is the background. Each class has a preferred texture family and hue
range (see :data:`CLASS_STYLE`), but these overlap between classes, a quarter of the objects are
small and a fifth faint, so a model is not certain everywhere. Labels are hard: the shapes are
rendered at 4x resolution and each pixel takes the majority label of its 16 sub-pixels (the
image edges are anti-aliased, the label maps are not).

Splits (folders under ``img_dir/`` and ``ann_dir/``):

* ``train``, ``val``, ``test``: the same distribution (val for model selection, test held out);
* ``shift``: a distribution shift with the same classes (strength :data:`SHIFT`): more and
  stronger clutter, more pixel noise, lower object contrast and a warm colour cast;
* ``ood``: in-distribution images that also hold one or two objects of an unseen class (stars
  and crosses with a smooth-noise texture, a family no ID class uses), labelled
  :data:`OOD_INDEX` (254). 255 stays free for ``ignore_index``; the generator never writes it.

A check of the difficulty (a 7-layer CNN, 1,200 Adam steps of 16 images, flips): mIoU 0.89 on
train, 0.70 on val, 0.68 on test, 0.44 on shift (ECE 0.02 on test, 0.05 on shift), and
1 - max-probability separates the OOD pixels from the others with AUROC 0.84.

Each split draws from its own random stream (seeded by ``seed`` and the split), so changing one
split's size leaves the others unchanged. Deterministic for a given seed: the same bytes twice.
"""
from __future__ import annotations

import os
import os.path as osp

import cv2
import numpy as np

from .demo_data import saturated_colour, smooth_noise, texture

SIZE = 64
_SS = 4  # supersampling factor: labels are the majority over _SS x _SS sub-pixels

CLASSES = ('background', 'disk', 'box', 'triangle')
#: Label of the pixels of unseen-class objects in the ``ood`` split (255 stays ``ignore_index``).
OOD_INDEX = 254
SPLITS = ('train', 'val', 'test', 'shift', 'ood')
#: Strength of the ``shift`` split's distribution shift (``shift`` of :func:`make_shapes_sample`):
#: a small CNN trained on ``train`` loses about a third of its test mIoU there, not all of it.
SHIFT = 0.6

#: Per class: the texture families with their probabilities, and the preferred hue range
#: (OpenCV hue, 0-179, wrapping round past 180). Neighbouring ranges overlap, and 15% of the
#: objects take any hue, so neither texture nor colour alone gives the class.
CLASS_STYLE = {
    1: dict(textures=(('dots', 0.55), ('waves', 0.25), ('stripes', 0.2)), hue=(90, 150)),
    2: dict(textures=(('checks', 0.55), ('stripes', 0.25), ('dots', 0.2)), hue=(35, 105)),
    3: dict(textures=(('stripes', 0.55), ('waves', 0.25), ('checks', 0.2)), hue=(150, 225)),
}
_ANY_HUE = 0.15
_OOD_TEXTURE = 'noise'
_PERIOD = (3.0, 8.0)  # texture periods in pixels at 64x64


def _rotated(pts: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return pts @ np.array([[c, s], [-s, c]], np.float64)


def _outline(rng: np.random.Generator, cls: int, r: float) -> dict:
    """The drawing of one shape of class ``cls`` (or :data:`OOD_INDEX`) with radius ``r``,
    centred on the origin, in supersampled pixels: ``dict(ellipse=...)`` or ``dict(poly=...)``."""
    angle = rng.uniform(0, 2 * np.pi)
    if cls == 1:  # ellipse, from circles to 1:2
        return dict(ellipse=((r, r * rng.uniform(0.5, 1.0)), float(np.degrees(angle))))
    if cls == 2:  # rotated rectangle, from squares to 1:2
        h = r * (rng.uniform(0.5, 1.0) if rng.random() < 0.6 else 1.0)
        pts = np.array([[-r, -h], [r, -h], [r, h], [-r, h]]) * 0.85
    elif cls == 3:  # triangle: vertices near 120 degrees apart, radii jittered
        ang = np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.35, 0.35, 3)
        rad = r * rng.uniform(0.85, 1.15, 3)
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    elif rng.random() < 0.5:  # OOD: a five- or six-pointed star
        k = int(rng.integers(5, 7))
        ang = np.arange(2 * k) * np.pi / k
        rad = np.where(np.arange(2 * k) % 2 == 0, r, r * rng.uniform(0.4, 0.5))
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    else:  # OOD: a cross (plus sign)
        w = r * rng.uniform(0.28, 0.38)
        pts = np.array([[-w, -r], [w, -r], [w, -w], [r, -w], [r, w], [w, w],
                        [w, r], [-w, r], [-w, w], [-r, w], [-r, -w], [-w, -w]])
    return dict(poly=_rotated(pts, angle))


def _draw(shape: dict, centre: np.ndarray, size: int) -> np.ndarray:
    """Render ``shape`` at ``centre`` on a ``size`` x ``size`` (supersampled) 0/1 uint8 canvas."""
    big = np.zeros((size, size), np.uint8)
    if 'ellipse' in shape:
        (a, b), deg = shape['ellipse']
        cv2.ellipse(big, (int(round(centre[0])), int(round(centre[1]))),
                    (max(1, int(round(a))), max(1, int(round(b)))), deg, 0, 360, 1, -1)
    else:
        cv2.fillPoly(big, [np.round(shape['poly'] + centre).astype(np.int32)], 1)
    return big


def _coverage(big: np.ndarray, size: int) -> np.ndarray:
    """Fraction of each pixel's sub-pixels set in the supersampled 0/1 mask ``big``."""
    # INTER_AREA with an integer factor is the exact block mean
    return cv2.resize(big.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def _majority(big_labels: np.ndarray, size: int) -> np.ndarray:
    """Each pixel's most frequent sub-pixel label (ties: the smallest label); uint8, hard."""
    values = np.unique(big_labels)
    shares = np.stack([_coverage((big_labels == v).view(np.uint8), size) for v in values], -1)
    # shares are multiples of 1 / _SS**2: round them so that float noise cannot break a tie
    return values[np.round(shares * _SS * _SS).argmax(-1)].astype(np.uint8)


def _object_colours(rng: np.random.Generator, cls: int, contrast: float):
    """The two colours of an object's texture: a class-preferred hue (any hue for OOD objects or
    with probability ``_ANY_HUE``) and a darker, less saturated second colour."""
    hue = (0, 180) if cls == OOD_INDEX or rng.random() < _ANY_HUE else CLASS_STYLE[cls]['hue']
    c1 = saturated_colour(rng, hue=hue)
    c2 = saturated_colour(rng, hue=hue, sat=(90, 200)) * rng.uniform(0.25, 1.0 - 0.4 * contrast)
    return c1, c2


def _texture_kind(rng: np.random.Generator, cls: int) -> str:
    if cls == OOD_INDEX:
        return _OOD_TEXTURE
    kinds, probs = zip(*CLASS_STYLE[cls]['textures'])
    return str(rng.choice(kinds, p=probs))


def _background(rng: np.random.Generator, size: int, shift: float) -> np.ndarray:
    """Smooth colour noise with low-contrast clutter: blobs (a third of them textured like the
    objects, often in the objects' hues) and strokes. ``shift`` adds more and stronger clutter."""
    bg = 0.35 + 0.3 * smooth_noise(rng, size, int(rng.integers(4, 16)))
    bg = bg * rng.uniform(0.6, 1.0, 3).astype(np.float32)
    big = size * _SS
    for _ in range(int(rng.integers(2, 6 + round(5 * shift)))):
        centre = rng.uniform(0, big, 2)
        r = rng.uniform(0.08, 0.3) * big
        k = int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * rng.uniform(0.5, 1.2, k)
        blob = _draw(dict(poly=np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)), centre, big)
        alpha = _coverage(blob, size)[..., None] * rng.uniform(0.15, 0.4 + 0.2 * shift)
        cls = int(rng.integers(1, 4))
        if rng.random() < 0.35:
            fill = texture(rng, size, _texture_kind(rng, cls), *_object_colours(rng, cls, 0.5), period=_PERIOD)
        elif rng.random() < 0.6:
            fill = saturated_colour(rng, hue=CLASS_STYLE[cls]['hue'])
        else:
            fill = rng.random(3).astype(np.float32)
        bg = bg * (1 - alpha) + fill * alpha
    for _ in range(int(rng.integers(1, 4 + round(3 * shift)))):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        colour = saturated_colour(rng) * rng.uniform(0.4, 0.8) if rng.random() < 0.5 else rng.random(3)
        cv2.line(bg, tuple(int(v) for v in p1), tuple(int(v) for v in p2),
                 tuple(float(v) for v in colour), 1)
    return bg


def _place(rng: np.random.Generator, cls: int, size: int, placed: list[np.ndarray], small: bool):
    """Draw a shape of class ``cls`` where it overlaps the objects already ``placed`` (supersampled
    masks) little; the last of 20 tries is kept whatever its overlap."""
    big = size * _SS
    for _ in range(20):
        r = (rng.uniform(0.06, 0.11) if small else rng.uniform(0.11, 0.24)) * big
        shape = _outline(rng, cls, r)
        centre = rng.uniform(0.12, 0.88, 2) * big
        mask = _draw(shape, centre, big)
        area = np.count_nonzero(mask)
        if area < 10 * _SS * _SS:  # at least about 10 pixels, also for shapes cut by the border
            continue
        if all(np.count_nonzero(mask & m) <= 0.2 * min(area, np.count_nonzero(m)) for m in placed):
            break
    return mask


def make_shapes_sample(rng: np.random.Generator, size: int = SIZE, shift: float = 0.0, n_ood: int = 0,
                       first_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One (BGR uint8 image, uint8 label map) pair.

    ``shift`` in [0, 1] moves the distribution away from the training one (more clutter and
    noise, lower contrast, a colour cast). ``n_ood`` unseen-class objects (labelled
    :data:`OOD_INDEX`) are drawn over the in-distribution ones. ``first_class`` fixes the class of
    the first object (the splits cycle through the classes, so each appears in every split).
    """
    img = _background(rng, size, shift)
    big = size * _SS
    labels = np.zeros((big, big), np.uint8)
    n_id = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    classes = [int(rng.integers(1, 4)) for _ in range(n_id)]
    if first_class is not None:
        classes[0] = first_class
    classes += [OOD_INDEX] * n_ood
    placed = []
    for cls in classes:
        small = cls != OOD_INDEX and rng.random() < 0.25
        mask = _place(rng, cls, size, placed, small)
        placed.append(mask)
        contrast = rng.uniform(0.2, 0.45) if rng.random() < 0.2 + 0.3 * shift else rng.uniform(0.5, 1.0)
        contrast *= 1.0 - 0.3 * shift
        if cls == OOD_INDEX:
            contrast = max(contrast, 0.6)
        tex = texture(rng, size, _texture_kind(rng, cls), *_object_colours(rng, cls, contrast), period=_PERIOD)
        alpha = _coverage(mask, size)[..., None] * (0.3 + 0.7 * contrast)
        img = img * (1 - alpha) + tex * alpha
        labels[mask > 0] = cls
    if shift > 0:  # colour cast: warm (blue down, red up) with a random strength
        cast = np.array([1 - 0.25 * shift, 1.0, 1 + 0.2 * shift], np.float32) * rng.uniform(0.85, 1.15, 3)
        img = img * cast.astype(np.float32) + 0.05 * shift
    img = img + rng.normal(0, 0.03 + 0.05 * shift, img.shape).astype(np.float32)
    img8 = (img.clip(0, 1) * 255).round().astype(np.uint8)
    return img8, _majority(labels, size)


def make_shapes_demo(root: str, n_train: int = 400, n_val: int = 80, n_test: int = 80, n_shift: int = 80,
                     n_ood: int = 60, seed: int = 0, size: int = SIZE) -> dict[str, str]:
    """Write the shapes demo under ``root`` and return the image folder of each split.

    Layout (mmseg's standard one)::

        root/img_dir/{train,val,test,shift,ood}/<split>_<index>.png   BGR uint8 images
        root/ann_dir/{train,val,test,shift,ood}/<split>_<index>.png   uint8 label maps

    with labels 0-3 (:data:`CLASSES`) and, in ``ood`` only, :data:`OOD_INDEX`.
    """
    counts = dict(train=n_train, val=n_val, test=n_test, shift=n_shift, ood=n_ood)
    out = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, k])
        img_dir, ann_dir = osp.join(root, 'img_dir', split), osp.join(root, 'ann_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(counts[split]):
            n_unseen = int(rng.integers(1, 3)) if split == 'ood' else 0
            img, label = make_shapes_sample(rng, size, shift=SHIFT if split == 'shift' else 0.0,
                                            n_ood=n_unseen, first_class=1 + i % 3)
            name = f'{split}_{i:05d}.png'
            cv2.imwrite(osp.join(img_dir, name), img)
            cv2.imwrite(osp.join(ann_dir, name), label)
        out[split] = img_dir
    return out
