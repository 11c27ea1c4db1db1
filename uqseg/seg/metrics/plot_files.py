"""Where the metrics' pictures go: a folder (given, or the runner's log folder) and file names."""
from __future__ import annotations

import os
import os.path as osp
import re
from typing import Optional

from mmengine.logging import MMLogger, print_log

__all__ = ['resolve_plot_dir', 'safe_name', 'plot_path']


def resolve_plot_dir(plot: bool, plot_dir: Optional[str], who: str) -> Optional[str]:
    """The folder for a metric's PNGs, or None for none.

    ``plot_dir`` if given; else, with ``plot=True``, ``<log dir>/uq_plots`` where the log dir is
    the folder of the current runner's log file (``<work_dir>/<timestamp>``, found through
    ``MMLogger.get_current_instance()``: a metric does not see the runner). Without a runner
    (no log file) a warning is logged and no picture is written.
    """
    if plot_dir:
        return plot_dir
    if not plot:
        return None
    log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
    if not log_file:
        print_log(f'{who}: plot=True but no runner log folder is known; set plot_dir to write the '
                  'pictures', logger='current', level=30)
        return None
    return osp.join(osp.dirname(log_file), 'uq_plots')


def safe_name(name: str) -> str:
    """A set name usable as a file name (path separators and odd characters replaced)."""
    return re.sub(r'[^A-Za-z0-9._+-]+', '_', name) or 'set'


def plot_path(folder: str, kind: str, set_name: str, prefix: Optional[str] = None) -> str:
    os.makedirs(folder, exist_ok=True)
    stem = f'{safe_name(prefix)}_' if prefix else ''
    return osp.join(folder, f'{stem}{kind}_{safe_name(set_name)}.png')
