"""``python -m mmteach``: see :mod:`mmteach.cli`."""

import sys

from mmteach.cli import main

if __name__ == "__main__":
    sys.exit(main())
