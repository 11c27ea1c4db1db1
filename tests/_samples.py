"""Build mmseg predictions the way the Evaluator hands them to metrics (``SegDataSample.to_dict()``)."""
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


def make_sample(seg_logits: torch.Tensor, label: torch.Tensor, set_name: str = 'A', img_path: str = 'x.jpg') -> dict:
    s = SegDataSample(metainfo=dict(set_name=set_name, img_path=img_path))
    s.seg_logits = PixelData(data=seg_logits)
    s.gt_sem_seg = PixelData(data=label[None] if label.dim() == 2 else label)
    return s.to_dict()
