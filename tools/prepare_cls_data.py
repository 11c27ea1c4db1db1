"""Write the classification data: the same as ``uqseg make-demo-data --only cls`` (uqseg/cli/make_demo_data.py)."""
import sys

from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('make-demo-data', ['--only', 'cls', *sys.argv[1:]])
