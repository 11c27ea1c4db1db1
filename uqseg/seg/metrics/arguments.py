"""Unknown keyword arguments of a registered metric name the metric and its valid keys."""
from __future__ import annotations

from ...core.checks import reject_unknown_kwargs

#: What a uqseg metric passes on to mmengine's ``BaseMetric`` besides collect_device and prefix.
BASE_METRIC_KWARGS = ('collect_dir',)


def check_metric_kwargs(metric: type, kwargs: dict) -> None:
    """Raise ``TypeError`` for keys of ``kwargs`` that neither ``metric`` nor ``BaseMetric`` take
    (instead of ``BaseMetric.__init__() got an unexpected keyword argument``)."""
    reject_unknown_kwargs(metric, kwargs, allowed=BASE_METRIC_KWARGS)
