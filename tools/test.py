"""Test a checkpoint: the same as ``uqseg test`` (uqseg/cli/test.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('test')
