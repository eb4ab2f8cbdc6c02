"""``python -m goectp.screening [options]``: the same as ``goectp screen [options]``, error handling included (one
line and exit status 2 for any error; ``--debug`` shows the traceback)."""

import sys

from goectp.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(["screen", *(argv[1:] if argv[:1] == ["screen"] else argv)]))
