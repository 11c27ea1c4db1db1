"""A deep ensemble of mmseg segmentors (Lakshminarayanan et al., 2017), tested as one model.

One line per member in a config (``uqseg train-members`` writes such a config)::

    model = dict(type='EnsembleSegmentor', members=[
        dict(config='configs/ce_shapes_demo.py', checkpoint='work_dirs/.../seed0/iter_800.pth'),
        dict(config='configs/edl_shapes_demo.py', checkpoint='...', cfg_options=None),
        dict(model=dict(type='EncoderDecoder', ...), checkpoint='...')])

Each member is built from its config's ``model`` (its own data preprocessor and ``test_cfg``:
whole or slide inference) and loaded strictly with the checkpoint allow-list
(:func:`uqseg.engine.checkpoint.load_checkpoint_strict`). Members may differ in config and
architecture; they must agree in their number of classes and, where their configs' test datasets
(or their checkpoints' ``dataset_meta``) name them, in their class names. At test each member in
turn preprocesses the raw batch and predicts it as mmseg does (``predict``: ``inference``, then
``postprocess_result``'s crop, flip and resize to the original size), and its per-image outputs
are fed to one streaming :class:`~uqseg.core.member_statistics.MemberStatistics` per image
(:mod:`.member_samples`): peak memory holds one member's outputs, whatever the number of members.
The predicted sample holds the mixture (``seg_logits`` = log of the mean probability; one-channel
sigmoid members: the mean foreground probability) and the member maps
(``seg_mutual_information``, ...). An ensemble is not trained (``loss`` raises): its members are.
"""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

from ....core.scores import PROBS
from ....engine.checkpoint import load_checkpoint_strict
from ....engine.members import MemberSpec, check_member_checkpoint, check_member_classes, checkpoint_classes
from ....engine.members import member_specs as engine_member_specs
from ...outputs import members_output, model_output
from .member_samples import add_member, new_statistics, write_members

__all__ = ['EnsembleSegmentor', 'member_specs']

_NAME = 'EnsembleSegmentor'


def member_specs(members: Sequence[dict]) -> List[MemberSpec]:
    """The members of an ``EnsembleSegmentor`` config read (configs parsed, nothing built or loaded;
    :func:`uqseg.engine.members.member_specs` with mmseg's datasets): for tools and tests that check
    an ensemble config without its checkpoints."""
    return engine_member_specs(members, _NAME, 'mmseg', DATASETS.get)


@MODELS.register_module()
class EnsembleSegmentor(BaseSegmentor):
    """M trained segmentors tested as one (module docstring).

    Args:
        members: ``dict(config=PATH or shipped name, checkpoint=PATH, cfg_options=None)`` or
            ``dict(model=<model config>, checkpoint=PATH)`` per member.
        trust_checkpoint: load the members' checkpoints without the allow-list (files you trust).
        data_preprocessor: ignored, with a warning unless None: the ensemble moves the raw batch to
            its device and each member preprocesses it with its own.
        init_cfg: ``BaseSegmentor``'s.
    """

    def __init__(self, members: Sequence[dict], trust_checkpoint: bool = False, data_preprocessor=None,
                 init_cfg=None) -> None:
        if data_preprocessor is not None and dict(data_preprocessor).get('type') != 'BaseDataPreprocessor':
            print_log(f"EnsembleSegmentor: data_preprocessor {dict(data_preprocessor).get('type')} ignored: each "
                      'member preprocesses the raw batch with its own (a base config\'s top-level data_preprocessor '
                      'reaches the ensemble through the Runner)', logger='current', level=logging.WARNING)
        super().__init__(data_preprocessor=None, init_cfg=init_cfg)  # moves the raw batch to the device only
        specs = member_specs(members)
        self.member_names = [s.name for s in specs]
        built = []
        for spec in specs:
            checkpoint = check_member_checkpoint(spec, _NAME)
            model = MODELS.build(spec.model)
            if not isinstance(model, BaseSegmentor) or not hasattr(model, 'decode_head'):
                raise ValueError(f'EnsembleSegmentor: {spec.name}: its model ({type(model).__name__}) is not an '
                                 'mmseg segmentor with a decode head')
            ckpt = load_checkpoint_strict(model, checkpoint, trust=trust_checkpoint,
                                          owner=f'EnsembleSegmentor {spec.name}', partial_option=None)
            spec.classes = spec.classes if spec.classes is not None else checkpoint_classes(ckpt)
            model.eval()
            built.append(model)
        check_member_classes(specs, [m.decode_head.num_classes for m in built], _NAME)
        self.members = torch.nn.ModuleList(built)
        head = built[0].decode_head
        self.num_classes = head.num_classes
        self.out_channels = 1 if all(m.out_channels == 1 for m in built) else self.num_classes
        self.threshold = getattr(head, 'threshold', None)
        self.align_corners = head.align_corners

    def init_weights(self) -> None:
        """Nothing: the members hold their checkpoints' weights."""

    def train(self, mode: bool = True):
        """The members stay in eval mode (an ensemble is not trained)."""
        super().train(mode)
        self.members.eval()
        return self

    def member_output(self):
        """What its samples hold (:func:`uqseg.seg.outputs.members_output`)."""
        kinds = tuple(model_output(m).kind if m.out_channels > 1 else PROBS for m in self.members)
        return members_output(self.source, kinds)

    @property
    def source(self) -> str:
        return f'EnsembleSegmentor of {len(self.members)} members'

    # -- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, inputs, data_samples: Optional[list] = None) -> list:
        """Every member preprocesses and predicts the raw batch in turn; one ``MemberStatistics``
        per image (module docstring). ``inputs``: the raw images (what the ensemble's own
        preprocessor, which only moves them to the device, hands on)."""
        n = len(inputs)
        if data_samples is None:
            shape = [tuple(x.shape[-2:]) for x in inputs]
            data_samples = [SegDataSample(metainfo=dict(ori_shape=s, img_shape=s, pad_shape=s,
                                                        padding_size=[0, 0, 0, 0])) for s in shape]
        stats = new_statistics(n)
        for name, member in zip(self.member_names, self.members):
            samples = [SegDataSample(metainfo=s.metainfo) for s in data_samples]
            data = member.data_preprocessor(dict(inputs=list(inputs), data_samples=samples), False)
            out = member.predict(data['inputs'], data['data_samples'])
            add_member(stats, out, model_output(member).kind, name)
            del out, data
        for sample, st in zip(data_samples, stats):
            write_members(sample, st, self.source, self.threshold)
        return data_samples

    def loss(self, inputs, data_samples) -> dict:
        raise RuntimeError('EnsembleSegmentor is not trained: train its members (uqseg train-members), then test '
                           'the ensemble config')

    def _forward(self, inputs, data_samples=None):
        raise RuntimeError("EnsembleSegmentor has no 'tensor' mode: its prediction is the members' mixture "
                           "(mode='predict')")

    def extract_feat(self, inputs):
        raise RuntimeError('EnsembleSegmentor has no features of its own: each member extracts its own')

    def encode_decode(self, inputs, batch_data_samples):
        raise RuntimeError("EnsembleSegmentor has no single logits: use mode='predict'")
