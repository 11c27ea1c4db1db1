"""tools/compare_calibration.py: its tables are the mean and sample std over seeds of each row's
metrics, and the temperature-scaling rows put the fit's validation numbers beside the test sets'."""
import numpy as np

from tests.helpers.scripts import load_script


def _metrics(seed, shift):
    return {f'{s}/{k}': 10.0 * seed + shift + len(k) for s in ('test', 'shift')
            for k in ('aAcc', 'mIoU', 'ECE', 'NLL', 'Brier')}


def test_tables_give_mean_and_std_over_seeds_and_the_temperature_effect():
    tool = load_script('tools/compare_calibration.py')
    demo = tool.DEMOS['shapes']
    results = {sd: {'plain': _metrics(sd, 0.0), 'plain + TS': _metrics(sd, -1.0)} for sd in (0, 1)}
    records = {sd: dict(temperature=1.5 + sd, before=dict(ECE=0.1, NLL=0.5 + sd), after=dict(ECE=0.05, NLL=0.4))
               for sd in (0, 1)}
    md, data = tool.tables(results, records, demo, [0, 1])
    assert data['plain + TS']['shift/NLL'] == [2.0, 12.0]
    row = next(line for line in md.splitlines() if line.startswith('| plain + TS |'))
    assert f'{np.mean([3.0, 13.0]):.2f} +- {np.std([3.0, 13.0], ddof=1):.2f}' in row  # test aAcc, first column
    val = next(line for line in md.splitlines() if '| val (fit) |' in line)
    assert f'{2.0:.3f} +- {np.std([1.5, 2.5], ddof=1):.3f}' in val  # T over the seeds
    assert f'{1.0:.4f} +- {np.std([0.5, 1.5], ddof=1):.4f}' in val  # NLL before
    shift = next(line for line in md.splitlines() if '| shift |' in line and line.startswith('| |'))
    assert f'{8.0:.4f} +- {np.std([3.0, 13.0], ddof=1):.4f}' in shift  # shift ECE before (plain)
    assert data['ts_effect']['shift']['ECE'] == [[3.0, 13.0], [2.0, 12.0]]
