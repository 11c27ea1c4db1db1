"""Score saved saliency maps against ground-truth masks: the same as ``uqseg eval-maps`` (uqseg/cli/eval_maps.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('eval-maps')
