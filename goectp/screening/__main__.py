"""``python -m goectp.screening [options]``: the same as ``goectp screen [options]``."""

import sys

from goectp.screening.cli import main

if __name__ == "__main__":
    sys.exit(main())
