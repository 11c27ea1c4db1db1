"""FPRMosaic (uqseg.cls.models.fpr_mosaic; spec section 3, FPR): the second half of the batch as 2x2
mosaics with 1/4 of each quadrant's score. Images of one constant colour each (its label, or its
index) let the quadrants be read back; a DisMax training step runs through mmpretrain's
ClsDataPreprocessor with the augment and is checked against the paper's half-and-half loss."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmpretrain.registry import BATCH_AUGMENTS, MODELS
from mmpretrain.structures import DataSample
from torch.distributions import Categorical, kl_divergence

import uqseg.cls.models  # noqa: F401
from uqseg.cls.models.fpr_mosaic import FPRMosaic

pytestmark = pytest.mark.usefixtures('one_thread')
K = 5


def _constant_images(values, h=8, w=8, c=3):
    return torch.tensor(values, dtype=torch.float32)[:, None, None, None].expand(-1, c, h, w).clone()


def _quadrant_values(img, h, w):
    """The (constant) value of each quadrant, in the order top-left, top-right, bottom-left, bottom-right."""
    h0, w0 = h // 2, w // 2
    out = []
    for q in (img[:, :h0, :w0], img[:, :h0, w0:], img[:, h0:, :w0], img[:, h0:, w0:]):
        assert torch.allclose(q, q.flatten()[0].expand_as(q), atol=1e-5), 'a quadrant is not one image'
        out.append(float(q.flatten()[0]))
    return out


@pytest.mark.parametrize('n,h,w', [(8, 8, 8), (5, 8, 8), (3, 7, 9), (1, 6, 6), (2, 2, 2)])
@pytest.mark.parametrize('mode', ['bilinear', 'nearest', 'bicubic', 'area'])
def test_mosaics_hold_four_batch_images_and_a_quarter_of_each_label(n, h, w, mode):
    torch.manual_seed(n)
    labels = torch.randint(0, K, (n,))
    x = _constant_images(labels.tolist(), h, w)
    scores = F.one_hot(labels, K)
    out, target = FPRMosaic(mode=mode)(x, scores)
    first = n // 2
    assert out.shape == x.shape and target.shape == (n, K) and target.dtype == torch.float32
    assert torch.equal(out[:first], x[:first]) and torch.equal(target[:first], scores[:first].float())
    assert torch.allclose(target.sum(1), torch.ones(n))
    for i in range(first, n):
        quads = _quadrant_values(out[i], h, w)
        assert all(abs(v - round(v)) < 1e-5 and round(v) in labels.tolist() for v in quads)
        want = F.one_hot(torch.tensor([round(v) for v in quads]), K).float().mean(0)
        assert torch.allclose(target[i], want)
    assert torch.equal(x, _constant_images(labels.tolist(), h, w))  # the input is not changed in place


def test_quadrants_are_the_batch_images_resized_by_interpolate_drawn_from_torchs_generator():
    n, h, w = 6, 12, 10
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, h, w, generator=g)
    scores = F.one_hot(torch.arange(n) % K, K).float()
    torch.manual_seed(123)
    perms = [torch.randperm(n)[:n - n // 2] for _ in range(4)]
    torch.manual_seed(123)
    out, target = FPRMosaic()(x, scores)
    boxes = ((0, 6, 0, 5), (0, 6, 5, 10), (6, 12, 0, 5), (6, 12, 5, 10))
    for (r0, r1, c0, c1), perm in zip(boxes, perms):
        want = F.interpolate(x[perm], size=(r1 - r0, c1 - c0), mode='bilinear', align_corners=False, antialias=True)
        assert torch.allclose(out[n // 2:, :, r0:r1, c0:c1], want, atol=1e-6)
    assert torch.allclose(target[n // 2:], sum(scores[p] for p in perms) / 4)
    # seeded by torch's global generator: the same seed, the same batch; another seed, another one
    torch.manual_seed(123)
    again = FPRMosaic()(x, scores)
    assert torch.equal(again[0], out) and torch.equal(again[1], target)
    torch.manual_seed(7)
    assert not torch.equal(FPRMosaic()(x, scores)[0], out)
    # without antialiasing: plain bilinear
    torch.manual_seed(123)
    plain = FPRMosaic(antialias=False)(x, scores)[0]
    want = F.interpolate(x[perms[0]], size=(6, 5), mode='bilinear', align_corners=False)
    assert torch.allclose(plain[n // 2:, :, :6, :5], want, atol=1e-6)


def test_soft_scores_after_mixup_are_averaged_over_the_quadrants():
    n = 8
    torch.manual_seed(0)
    labels = torch.randint(0, K, (n,))
    _, soft = BATCH_AUGMENTS.build(dict(type='Mixup', alpha=1.0))(torch.rand(n, 1, 8, 8), F.one_hot(labels, K))
    assert not torch.equal(soft, F.one_hot(labels, K).float())
    x = _constant_images(list(range(n)), c=1)  # colour = index: the quadrants name their source image
    out, target = FPRMosaic()(x, soft)
    assert torch.equal(target[:n // 2], soft[:n // 2])
    for i in range(n // 2, n):
        src = [round(v) for v in _quadrant_values(out[i], 8, 8)]
        assert torch.allclose(target[i], soft[src].mean(0), atol=1e-6)
    assert torch.allclose(target.sum(1), torch.ones(n), atol=1e-6)


def test_integer_inputs_become_float_and_bad_arguments_raise():
    x = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    out, target = FPRMosaic()(x, F.one_hot(torch.tensor([0, 1, 2, 3]), K))
    assert out.dtype == torch.float32 and target.dtype == torch.float32 and torch.equal(out[:2], x[:2].float())
    with pytest.raises(ValueError, match='FPRMosaic: mode must be one of'):
        FPRMosaic(mode='linear')
    with pytest.raises(ValueError, match=r'FPRMosaic: batch_inputs must be an \(N, C, H, W\) tensor'):
        FPRMosaic()(torch.rand(4, 8, 8), torch.rand(4, K))
    with pytest.raises(ValueError, match=r'FPRMosaic: batch_score must be the \(N, num_classes\) scores of the 4'):
        FPRMosaic()(torch.rand(4, 1, 8, 8), torch.rand(3, K))
    with pytest.raises(ValueError, match='at least 2x2'):
        FPRMosaic()(torch.rand(4, 1, 1, 8), torch.rand(4, K))
    assert 'bilinear' in repr(FPRMosaic())


def test_a_dismax_training_step_through_the_cls_data_preprocessor():
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='LeNet5'), neck=dict(type='GlobalAveragePooling'),
        head=dict(type='OutputLayerClsHead', num_classes=K, in_channels=120, output_layer=dict(type='DisMaxLayer'),
                  loss=dict(type='DisMaxLoss')),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=K,
                               batch_augments=dict(augments=dict(type='FPRMosaic')))))
    model.init_weights()
    assert isinstance(model.data_preprocessor.batch_augments.augments[0], FPRMosaic)
    n = 8
    labels = torch.arange(n) % K
    g = torch.Generator().manual_seed(1)
    images = [255 * torch.rand(1, 32, 32, generator=g) for _ in range(n)]

    def data():  # fresh samples: the preprocessor writes gt_score into them
        return dict(inputs=images, data_samples=[DataSample().set_gt_label(int(c)) for c in labels])

    torch.manual_seed(5)
    batch = model.data_preprocessor(data(), True)
    scores = torch.stack([s.gt_score for s in batch['data_samples']])
    assert torch.equal(scores[:n // 2], F.one_hot(labels[:n // 2], K).float())
    assert torch.allclose(scores.sum(1), torch.ones(n)) and bool((scores[n // 2:] < 1).any())
    # the head's loss: the paper's (CE(first half) + KL(q || p)(second half)) / 2
    z = model(batch['inputs'], mode='tensor')
    ce = F.cross_entropy(10 * z[:n // 2], labels[:n // 2])
    kl = kl_divergence(Categorical(probs=scores[n // 2:]), Categorical(logits=10 * z[n // 2:])).mean()
    loss = model(**batch, mode='loss')['loss']
    assert loss.item() == pytest.approx(((ce + kl) / 2).item(), rel=1e-5)
    # one optimiser step through mmengine's train_step
    before = model.head.fc.prototypes.detach().clone()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    torch.manual_seed(5)
    log_vars = model.train_step(data(), wrapper)
    assert torch.isfinite(log_vars['loss']) and log_vars['loss'].item() == pytest.approx(loss.item(), rel=1e-5)
    assert not torch.equal(model.head.fc.prototypes, before)
    # validation / test batches are not augmented
    val = model.data_preprocessor(data(), False)
    assert torch.equal(torch.stack([s.gt_score for s in val['data_samples']]), F.one_hot(labels, K).float())
