"""Small members for the tests of ensembles, MC dropout and TTA views: the shapes baseline's
model (ResNetV1c-18 at half width, 64x64 images), a second architecture with its own
preprocessor and slide inference, checkpoints in a temporary folder, and a raw batch."""
import copy

import torch
from mmengine.config import Config
from mmseg.registry import MODELS

import uqseg  # noqa: F401
from tests.helpers.cfg import REPO
from tests.helpers.samples import raw_batch  # noqa: F401  (the members tests import it from here)

CE = f'{REPO}/configs/ce_shapes_demo.py'
SIZE = (64, 64)


def model_cfg(config: str = CE, **kw) -> dict:
    cfg = copy.deepcopy(Config.fromfile(config).model)
    cfg.update(kw)
    return cfg


def other_architecture_cfg() -> dict:
    """A PSP head on a narrower input normalisation, tested by sliding 40x40 windows."""
    cfg = model_cfg()
    cfg.data_preprocessor.mean = [100.0, 110.0, 120.0]
    cfg.data_preprocessor.std = [50.0, 60.0, 70.0]
    head = cfg.decode_head
    cfg.decode_head = dict(type='PSPHead', in_channels=256, in_index=3, channels=32, pool_scales=(1, 2),
                           dropout_ratio=0.1, num_classes=4, norm_cfg=head.norm_cfg, align_corners=False,
                           loss_decode=head.loss_decode)
    cfg.test_cfg = dict(mode='slide', crop_size=(40, 40), stride=(24, 24))
    return cfg


def build(cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(cfg)).eval()


def save(model, path, classes=None) -> str:
    """A checkpoint of ``model`` as mmengine writes one (``meta.dataset_meta`` with ``classes``)."""
    meta = {'dataset_meta': {'classes': tuple(classes)}} if classes else {}
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, str(path))
    return str(path)




def reference(member_logits, kinds=None) -> dict:
    """The float64 statistics of members' stored (K, H, W) outputs, from their definitions."""
    kinds = kinds or ['logits'] * len(member_logits)
    p = torch.stack([z.double() if k == 'probs' else z.double().softmax(0) for z, k in zip(member_logits, kinds)])
    mean = p.mean(0)

    def h(q):
        return -torch.special.xlogy(q, q).sum(-3)

    pred = mean.argmax(0)
    py = p.gather(1, pred[None, None].expand(p.shape[0], 1, *pred.shape))[:, 0]
    return {'mean': mean, 'mutual-information': h(mean) - h(p).mean(0), 'expected-entropy': h(p).mean(0),
            'class-variance': py.var(0, unbiased=False),
            'disagreement': (p.argmax(1) != pred).double().mean(0)}
