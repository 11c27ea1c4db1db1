"""Classification heads registered in mmpretrain's MODELS."""
from .output_layer_cls_head import OutputLayerClsHead

__all__ = ['OutputLayerClsHead']
