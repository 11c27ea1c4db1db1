"""Backbones registered in mmpretrain's ``MODELS``."""
from .torchvision_backbone import TorchvisionBackbone, classification_models, find_classifier

__all__ = ['TorchvisionBackbone', 'classification_models', 'find_classifier']
