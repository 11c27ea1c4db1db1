"""Decode-head extensions: ``dict(type=<extension>, head=dict(type=<any decode head>, ...))``."""
from .aslp_head import ASLPHead
from .head_wrapper import DecodeHeadWrapper
from .output_layer_head import OutputLayerHead

__all__ = ['ASLPHead', 'DecodeHeadWrapper', 'OutputLayerHead']
