"""Reliability diagrams and risk-coverage curves as PNG files (matplotlib, Agg canvas).

The figures are drawn on ``matplotlib.figure.Figure`` objects with an Agg canvas, never through
``pyplot``: nothing touches the global backend or figure manager, so this works on headless
machines and inside training processes.
"""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Mapping, Optional

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

__all__ = ['draw_reliability', 'plot_reliability_diagram', 'plot_risk_coverage', 'plot_risk_coverage_curves',
           'new_figure', 'save_figure']


def new_figure(width: float, height: float):
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str) -> str:
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format='png')
    return path


def _numpy(data: Mapping) -> dict:
    return {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in data.items()}


def _fmt_metrics(metrics: Optional[Mapping[str, float]]) -> str:
    if not metrics:
        return ''
    return '  '.join(f'{k} {v:.4f}' if isinstance(v, float) and math.isfinite(v) else f'{k} {v}'
                     for k, v in metrics.items())


def draw_reliability(ax, bins: Mapping) -> dict:
    """Draw the upper panel of a reliability diagram on ``ax``; return its artists by role.

    Per non-empty bin: the **accuracy** as a blue bar (its top is the accuracy), the **mean
    confidence** as a black line across the bin at its height, and the **gap** between the two,
    hatched: red and filled above the bar where the bin is over-confident (confidence above
    accuracy), orange and unfilled inside the bar where it is under-confident, so the blue bar
    still reads as the accuracy and the line as the confidence in both directions. Returns
    ``dict(accuracy=, confidence=, over=, under=)`` (bar containers and a line collection).
    """
    r = _numpy(bins)
    filled = r['count'] > 0
    lower, upper = r['lower'][filled], r['upper'][filled]
    width, centre = upper - lower, (upper + lower) / 2
    acc, conf = r['acc'][filled], r['conf'][filled]
    over, under = conf > acc, conf < acc
    out = dict(accuracy=ax.bar(centre, acc, width=width, color='#4c72b0', edgecolor='black', linewidth=0.6,
                               label='accuracy'))
    out['over'] = ax.bar(centre[over], (conf - acc)[over], bottom=acc[over], width=width[over], color='#dd4444',
                         alpha=0.4, edgecolor='#aa0000', hatch='//', linewidth=0.5,
                         label='gap: over-confident' if over.any() else '_nolegend_')
    out['under'] = ax.bar(centre[under], (acc - conf)[under], bottom=conf[under], width=width[under],
                          facecolor='none', edgecolor='#ff9f1c', hatch='\\\\', linewidth=0.8,
                          label='gap: under-confident' if under.any() else '_nolegend_')
    out['confidence'] = ax.hlines(conf, lower, upper, colors='black', linewidth=1.8, label='mean confidence')
    ax.plot([0, 1], [0, 1], '--', color='grey', linewidth=1, label='perfect calibration')
    return out


def plot_reliability_diagram(bins: Mapping, path: str, title: str = '', metrics: Optional[Mapping[str, float]] = None,
                             xlabel: str = 'confidence', ylabel: str = 'accuracy',
                             count_label: str = 'pixels') -> str:
    """Write a reliability diagram to ``path`` (PNG) and return the path.

    Top: :func:`draw_reliability` and the diagonal. Bottom: the number of values per bin (log
    scale when counts span more than 100x). ``bins`` is the reliability data of
    :meth:`uqseg.core.accumulators.CalibrationAccumulator.reliability`. For positive-class
    calibration pass ``xlabel='predicted probability', ylabel='frequency of the positive class'``.
    """
    r = _numpy(bins)
    fig = new_figure(5.0, 6.2)
    gs = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08, left=0.15, right=0.96, top=0.9, bottom=0.08)
    ax, axc = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    draw_reliability(ax, r)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_xticklabels([])
    ax.legend(loc='upper left', fontsize=8)
    head = title + ('\n' if title and metrics else '') + _fmt_metrics(metrics)
    if head:
        ax.set_title(head, fontsize=9)
    width = r['upper'] - r['lower']
    centre = (r['upper'] + r['lower']) / 2
    axc.bar(centre, np.maximum(r['count'], 0), width=width, color='#777777', edgecolor='black', linewidth=0.4)
    counts = r['count'][r['count'] > 0]
    if counts.size and counts.max() > 100 * counts.min():
        axc.set_yscale('log')
        axc.yaxis.set_minor_formatter(NullFormatter())
    else:
        axc.ticklabel_format(axis='y', style='sci', scilimits=(0, 3))
    axc.set_xlim(0, 1)
    axc.set_xlabel(xlabel)
    axc.set_ylabel(count_label)
    return save_figure(fig, path)


def plot_risk_coverage(curve: Mapping, path: str, title: str = '', metrics: Optional[Mapping[str, float]] = None,
                       ylabel: str = 'selective risk (pixel error rate)') -> str:
    """Write a risk-coverage plot (selective risk vs coverage, with the perfect ordering and the
    error rate of accepting everything) to ``path``; ``curve`` from
    :meth:`uqseg.core.accumulators.ConfidenceHistogram.risk_coverage`."""
    curve = _numpy(curve)
    fig = new_figure(5.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(curve['coverage'], curve['risk'], color='#4c72b0', linewidth=1.5, label='model')
    if len(curve['coverage_opt']):
        ax.plot(curve['coverage_opt'], curve['risk_opt'], '--', color='#55a868', linewidth=1, label='perfect ordering')
        ax.axhline(curve['error_rate'], color='grey', linestyle=':', linewidth=1, label='no rejection')
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel('coverage')
    ax.set_ylabel(ylabel)
    ax.legend(loc='upper left', fontsize=8)
    head = title + ('\n' if title and metrics else '') + _fmt_metrics(metrics)
    if head:
        ax.set_title(head, fontsize=9)
    return save_figure(fig, path)


def plot_risk_coverage_curves(curves: Mapping[str, Mapping], path: str, title: str = '',
                              error_rate: Optional[float] = None,
                              ylabel: str = 'selective risk (error rate)') -> str:
    """Write several risk-coverage curves in one plot to ``path`` (PNG) and return the path.

    ``curves`` maps a legend label (a confidence, a model) to ``{'coverage', 'risk'}`` (e.g.
    :func:`uqseg.core.selective.selective_report`'s ``curves``). With ``error_rate`` (the risk at
    full coverage, ``e``) also the perfect ordering of those samples, ``max(0, c - (1 - e)) / c``
    at coverage ``c``, and the no-rejection line ``e``.
    """
    fig = new_figure(5.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for label, curve in curves.items():
        c = _numpy(curve)
        ax.plot(c['coverage'], c['risk'], linewidth=1.5, label=str(label))
    if error_rate is not None and math.isfinite(error_rate):
        cov = np.linspace(1e-3, 1, 1000)
        ax.plot(cov, np.maximum(cov - (1 - error_rate), 0) / cov, '--', color='#55a868', linewidth=1,
                label='perfect ordering')
        ax.axhline(error_rate, color='grey', linestyle=':', linewidth=1, label='no rejection')
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel('coverage')
    ax.set_ylabel(ylabel)
    ax.legend(loc='upper left', fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
