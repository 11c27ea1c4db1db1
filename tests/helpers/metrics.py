"""Building, running and feeding the registered pixel metrics in one process."""
import math

import torch
from mmseg.registry import METRICS

import uqseg  # noqa: F401  (registers the metrics)

from .samples import make_sample


def build(type_, **kw):
    return METRICS.build(dict(type=type_, **kw))


def run(m, samples, batch=2):
    """Process ``samples`` in batches and compute the metrics (no evaluate(): no gathering)."""
    for i in range(0, len(samples), batch):
        m.process({}, samples[i:i + batch])
    return m.compute_metrics(m.results)


def close(a, b, tol=1e-9):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def random_binary(n_img=6, h=13, w=17, seed=0, ignore=True, sets='ST', quantize=None):
    """Random sigmoid maps with labels drawn from a distorted p; some pixels ignored."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_img):
        p = torch.rand(1, h, w, generator=g) ** 1.5
        if quantize:
            p = (torch.floor(p * quantize) + 0.5) / quantize
        y = (torch.rand(h, w, generator=g) < p[0] * 0.7 + 0.15).long()
        if ignore:
            y[torch.rand(h, w, generator=g) < 0.1] = 255
        out.append(make_sample(p, y, set_name=sets[i % len(sets)], img_path=f'{i}.jpg'))
    return out


def flat(samples, name=None):
    """(p, label) over the valid pixels of the samples of set ``name`` (binary)."""
    sel = [s for s in samples if name is None or s['set_name'] == name]
    p = torch.cat([s['seg_logits']['data'].flatten() for s in sel])
    y = torch.cat([s['gt_sem_seg']['data'].flatten() for s in sel])
    keep = y != 255
    return p[keep], y[keep]  # p in the prediction's float32, as the metrics compute


def ood_samples(seed=13, n_id=7, n_ood=5, quantize=None):
    """ID images of sets 'ID1' / 'ID2' and OOD images of set 'DTD' (all background, less confident)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_id + n_ood):
        ood = i >= n_id
        p = torch.rand(1, 6, 8, generator=g) * (0.5 if ood else 1.0) + (0.25 if ood else 0.0)
        if quantize:
            p = (torch.floor(p * quantize) + 0.5) / quantize
        y = (torch.rand(6, 8, generator=g) < p[0]).long() if not ood else torch.zeros(6, 8, dtype=torch.long)
        if i == 1:
            y[0] = 255
        out.append(make_sample(p, y, set_name='DTD' if ood else ('ID1' if i % 2 else 'ID2'), img_path=f'{i}.jpg'))
    return out
