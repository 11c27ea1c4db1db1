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

__all__ = ['reliability_from_sums', 'plot_reliability_diagram', 'risk_coverage_from_histogram',
           'plot_risk_coverage', 'new_figure', 'save_figure']


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str) -> str:
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format='png')
    return path


def reliability_from_sums(sums) -> dict[str, np.ndarray]:
    """Per-bin ``count``, ``conf``, ``acc`` (NaN for empty bins) and ``lower`` / ``upper`` edges
    from ``(3, n_bins)`` sums ``[count, sum conf, sum correct]`` (the calibration metric's state)."""
    s = torch.as_tensor(sums, dtype=torch.float64).cpu().numpy()
    if s.ndim != 2 or s.shape[0] != 3:
        raise ValueError(f'sums must have shape (3, n_bins), got {s.shape}')
    n = s.shape[1]
    count = s[0]
    with np.errstate(invalid='ignore', divide='ignore'):
        conf = np.where(count > 0, s[1] / count, np.nan)
        acc = np.where(count > 0, s[2] / count, np.nan)
    edges = np.arange(n + 1, dtype=np.float64) / n
    return dict(count=count, conf=conf, acc=acc, lower=edges[:-1], upper=edges[1:])


def _fmt_metrics(metrics: Optional[Mapping[str, float]]) -> str:
    if not metrics:
        return ''
    return '  '.join(f'{k} {v:.4f}' if isinstance(v, float) and math.isfinite(v) else f'{k} {v}'
                     for k, v in metrics.items())


def plot_reliability_diagram(sums, path: str, title: str = '', metrics: Optional[Mapping[str, float]] = None,
                             xlabel: str = 'confidence', ylabel: str = 'accuracy') -> str:
    """Write a reliability diagram to ``path`` (PNG) and return the path.

    Top: per bin, a bar of the accuracy, the gap to the bin's mean confidence (red, hatched;
    above the bar = over-confident), the mean confidence as a marker and the diagonal. Bottom:
    the number of pixels per bin (log scale). ``sums`` are ``(3, n_bins)`` bin sums
    (:func:`reliability_from_sums`). For positive-class calibration pass
    ``xlabel='predicted probability', ylabel='frequency of the positive class'``.
    """
    r = reliability_from_sums(sums)
    fig = new_figure(5.0, 6.2)
    gs = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08, left=0.15, right=0.96, top=0.9, bottom=0.08)
    ax, axc = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    width = r['upper'] - r['lower']
    centre = (r['upper'] + r['lower']) / 2
    filled = r['count'] > 0
    acc = np.where(filled, r['acc'], 0.0)
    conf = np.where(filled, r['conf'], 0.0)
    ax.bar(centre, acc, width=width, edgecolor='black', color='#4c72b0', linewidth=0.6, label='accuracy')
    gap_lo, gap_hi = np.minimum(acc, conf), np.maximum(acc, conf)
    ax.bar(centre[filled], (gap_hi - gap_lo)[filled], bottom=gap_lo[filled], width=width[filled],
           color='#dd4444', alpha=0.35, edgecolor='#aa0000', hatch='//', linewidth=0.5, label='gap')
    ax.plot(conf[filled], acc[filled], 'o', color='black', markersize=3, label='mean confidence')
    ax.plot([0, 1], [0, 1], '--', color='grey', linewidth=1, label='perfect calibration')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_xticklabels([])
    ax.legend(loc='upper left', fontsize=8)
    head = title + ('\n' if title and metrics else '') + _fmt_metrics(metrics)
    if head:
        ax.set_title(head, fontsize=9)
    axc.bar(centre, np.maximum(r['count'], 0), width=width, color='#777777', edgecolor='black', linewidth=0.4)
    counts = r['count'][filled]
    if counts.size and counts.max() > 100 * counts.min():
        from matplotlib.ticker import NullFormatter
        axc.set_yscale('log')
        axc.yaxis.set_minor_formatter(NullFormatter())
    else:
        axc.ticklabel_format(axis='y', style='sci', scilimits=(0, 3))
    axc.set_xlim(0, 1)
    axc.set_xlabel(xlabel)
    axc.set_ylabel('pixels')
    return save_figure(fig, path)


def risk_coverage_from_histogram(state) -> dict[str, np.ndarray]:
    """Risk-coverage curve of a ``(2, n_bins)`` confidence histogram (row 0 correct, row 1 wrong).

    Points at the end of every non-empty bin, highest confidence first (each bin is one tie
    group, so the curve between them is the expected one): ``coverage``, ``risk``; plus the
    curve of the perfect ordering, ``coverage_opt`` / ``risk_opt``, on a grid of up to 1000
    points, and the overall ``error_rate``.
    """
    s = torch.as_tensor(state, dtype=torch.float64).cpu().flip(1)
    keep = s.sum(0) > 0
    ok, err = s[0, keep].numpy(), s[1, keep].numpy()
    n = ok.sum() + err.sum()
    if n == 0:
        e = np.zeros(0)
        return dict(coverage=e, risk=e, coverage_opt=e, risk_opt=e, error_rate=np.nan)
    cum_n = np.cumsum(ok + err)
    cum_e = np.cumsum(err)
    e_tot = err.sum()
    k = np.unique(np.linspace(1, n, num=int(min(n, 1000))).round())
    risk_opt = np.maximum(0.0, k - (n - e_tot)) / k
    return dict(coverage=np.concatenate([[0.0], cum_n / n]), risk=np.concatenate([[cum_e[0] / cum_n[0]],
                                                                                 cum_e / cum_n]),
                coverage_opt=k / n, risk_opt=risk_opt, error_rate=e_tot / n)


def plot_risk_coverage(curve: Mapping[str, np.ndarray], path: str, title: str = '',
                       metrics: Optional[Mapping[str, float]] = None) -> str:
    """Write a risk-coverage plot (selective risk vs coverage, with the perfect ordering and the
    error rate of accepting everything) to ``path``; ``curve`` from
    :func:`risk_coverage_from_histogram`."""
    fig = new_figure(5.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(curve['coverage'], curve['risk'], color='#4c72b0', linewidth=1.5, label='model')
    if len(curve['coverage_opt']):
        ax.plot(curve['coverage_opt'], curve['risk_opt'], '--', color='#55a868', linewidth=1, label='perfect ordering')
        ax.axhline(curve['error_rate'], color='grey', linestyle=':', linewidth=1, label='no rejection')
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel('coverage')
    ax.set_ylabel('selective risk (pixel error rate)')
    ax.legend(loc='upper left', fontsize=8)
    head = title + ('\n' if title and metrics else '') + _fmt_metrics(metrics)
    if head:
        ax.set_title(head, fontsize=9)
    return save_figure(fig, path)
