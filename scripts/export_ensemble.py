"""Moved to ``goectp ensemble export`` (:mod:`goectp.release.export`); this wrapper forwards its arguments."""

import sys

from goectp.cli import main

if __name__ == "__main__":
    sys.exit(main(["ensemble", "export", *sys.argv[1:]]))
