"""Fit a classifier's temperature: the same as ``uqseg calibrate`` (uqseg/cli/calibrate.py), which reads the front end
from the config's default_scope."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('calibrate')
