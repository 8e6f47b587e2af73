"""``python -m vigil``: the same as the ``vigil`` command."""

import sys

from vigil.cli import main

if __name__ == "__main__":
    sys.exit(main())
