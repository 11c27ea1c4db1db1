"""The SOD demo (BCE vs ASLP, one line per stage): the same as ``uqseg demo`` (uqseg/cli/demo.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('demo')
