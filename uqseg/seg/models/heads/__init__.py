"""Decode-head extensions: ``dict(type=<extension>, head=dict(type=<any decode head>, ...))``."""
from .aslp_head import ASLPHead
from .head_wrapper import DecodeHeadWrapper

__all__ = ['ASLPHead', 'DecodeHeadWrapper']
