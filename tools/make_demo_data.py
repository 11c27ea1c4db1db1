"""Write the SOD, shapes and cls demo data: the same as ``uqseg make-demo-data`` (uqseg/cli/make_demo_data.py)."""
from uqseg.cli import tool_main

if __name__ == '__main__':
    tool_main('make-demo-data')
