"""Dump the learned ASLP alphas of a checkpoint: the same as ``uqseg dump-alphas`` (uqseg/cli/dump_alphas.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('dump-alphas')
