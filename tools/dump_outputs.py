"""Save a classifier's outputs and labels: the same as ``uqseg dump-outputs`` (uqseg/cli/dump_outputs.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('dump-outputs')
