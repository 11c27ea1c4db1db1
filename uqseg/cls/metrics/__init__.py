"""The classification metrics registered in mmpretrain's ``METRICS``."""
from .selective_prediction_metric import OWN_SCORE, SelectivePredictionMetric

__all__ = ['SelectivePredictionMetric', 'OWN_SCORE']
