"""The baselines comparison on a demo: the same as ``uqseg compare-baselines`` (uqseg/cli/compare_baselines.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('compare-baselines')
