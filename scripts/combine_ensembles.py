"""Moved to ``goectp ensemble combine`` (:mod:`goectp.release.combine`); this wrapper forwards its arguments."""

import sys

from goectp.cli import main

if __name__ == "__main__":
    sys.exit(main(["ensemble", "combine", *sys.argv[1:]]))
