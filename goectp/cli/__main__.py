"""``python -m goectp.cli``: the same as ``goectp``."""

import sys

from goectp.cli import main

if __name__ == "__main__":
    sys.exit(main())
