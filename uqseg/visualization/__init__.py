"""Pictures of pixel-level uncertainty: reliability diagrams, risk-coverage curves, uncertainty maps.

All drawing uses matplotlib ``Figure`` objects on an Agg canvas (no ``pyplot`` state, works
headless). Nothing here is registered in mmseg's registries; the metrics call
:func:`plot_reliability_diagram` / :func:`plot_risk_coverage` when asked to plot, and
:class:`uqseg.hooks.UncertaintyMapHook` calls :func:`save_uncertainty_figure`.
"""
from .maps import save_uncertainty_figure, uncertainty_panels
from .plots import (new_figure, plot_reliability_diagram, plot_risk_coverage, reliability_from_sums,
                    risk_coverage_from_histogram, save_figure)

__all__ = ['plot_reliability_diagram', 'plot_risk_coverage', 'reliability_from_sums',
           'risk_coverage_from_histogram', 'save_uncertainty_figure', 'uncertainty_panels',
           'new_figure', 'save_figure']
