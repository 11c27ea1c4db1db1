"""Train a deep ensemble's members, one per seed: the same as ``uqseg train-members`` (uqseg/cli/train_members.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('train-members')
