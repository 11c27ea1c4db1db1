"""Fit a temperature and write a calibrated checkpoint: the same as ``uqseg calibrate`` (uqseg/cli/calibrate.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('calibrate')
