"""Losses and heads (registered in mmseg's MODELS)."""
