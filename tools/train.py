"""Train a segmentor or classifier: the same as ``uqseg train`` (uqseg/cli/train.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('train')
