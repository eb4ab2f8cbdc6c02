"""Moved to ``goectp ensemble calibrate`` (:mod:`goectp.release.calibrate`); this wrapper forwards its arguments."""

import sys

from goectp.cli import main

if __name__ == "__main__":
    sys.exit(main(["ensemble", "calibrate", *sys.argv[1:]]))
