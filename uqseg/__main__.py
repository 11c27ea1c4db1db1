"""``python -m uqseg COMMAND ...``: the ``uqseg`` command (:mod:`uqseg.cli`)."""
from uqseg.cli import main

if __name__ == '__main__':
    main()
