"""Rank models from their output files: the same as ``uqseg eval-selective`` (uqseg/cli/eval_selective.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('eval-selective')
