"""``python -m mmteach``: see :mod:`mmteach.cli`."""

import os
import sys

# The fits use many small matrix operations; BLAS threading on a shared 2-core machine makes
# them 10-70x slower under load. Set before numpy is imported; a user's setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mmteach.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
