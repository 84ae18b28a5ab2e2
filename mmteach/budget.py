"""How much work one request may ask for: group and row limits per analysis, time and memory caps.

The limits keep one student's upload from stalling a class that shares a server. Each
analysis has a ceiling on groups and rows; :func:`skip_reason` says in plain words why an
analysis was left out. :func:`limit_memory` and :func:`time_limit` cap a worker process
that runs fits (``ui/compute.py`` runs them in a process pool: call ``limit_memory`` in the
worker's initializer and wrap each call in ``time_limit``, or use :func:`call`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from mmteach.errors import ModelError

T = TypeVar("T")


@dataclass(frozen=True)
class Limit:
    """The largest data one analysis takes, and why it stops there."""

    max_groups: int
    max_rows: int
    why: str


# Measured on one core (OPENBLAS_NUM_THREADS=1): at these sizes each analysis takes at most
# a few seconds. Per-group fits cost a full fit per group and a figure panel per group.
LIMITS: dict[str, Limit] = {
    "per_group": Limit(300, 200_000, "it fits a separate model to every group, one by one"),
    "fixed_group": Limit(50_000, 500_000, "it estimates one coefficient per group"),
    "pooled": Limit(10**9, 1_000_000, "it reads every row"),
    "mixed": Limit(100_000, 500_000, "it fits a mixed model to every row"),
    "glmm": Limit(20_000, 200_000, "a logistic mixed model is refitted iteratively"),
    "per_group_plot": Limit(60, 10**9, "a figure with one panel or colour per group is unreadable beyond that"),
    "partial_pooling": Limit(300, 10**9, "it fits every group on its own and draws an arrow per group"),
    "caterpillar": Limit(2_000, 10**9, "a figure with one row per group is unreadable beyond that"),
}

# Seconds and megabytes one request may use in a worker process.
SECONDS = 60.0
MEGABYTES = 1024


class BudgetExceeded(ModelError):
    """A request that ran past its time or memory budget (it was stopped, not finished)."""


def skip_reason(analysis: str, n_groups: int, n_rows: int, *, label: str,
                unit: str = "groups", plural: bool = True) -> str | None:
    """Why ``analysis`` (shown as ``label``, ``plural`` or not) is left out for data of this
    size, or None when it runs.

    Examples
    --------
    >>> skip_reason("per_group", 12, 400, label="The per-mouse fits") is None
    True
    >>> skip_reason("per_group", 10_000, 30_000, label="The per-mouse fits", unit="mice")[:63]
    'The per-mouse fits are left out: the data have 10,000 mice, and'
    """
    limit = LIMITS[analysis]
    if n_groups > limit.max_groups:
        size = f"the data have {n_groups:,} {unit}, and they run for at most {limit.max_groups:,}"
    elif n_rows > limit.max_rows:
        size = f"the data have {n_rows:,} rows, and they run for at most {limit.max_rows:,}"
    else:
        return None
    verb = "are" if plural else "is"
    return f"{label} {verb} left out: {size} ({limit.why}). The other analyses use every group."


def limit_memory(megabytes: int = MEGABYTES) -> bool:
    """Let this process's address space grow by at most ``megabytes`` from now on (call it
    in a worker process once its libraries are loaded, never in the server).

    A fit that needs more then gets a MemoryError (turned into BudgetExceeded by
    :func:`call`) instead of slowing every other student down. Returns False where the
    platform has no such limit.
    """
    try:
        import resource
    except ImportError:  # not on Windows
        return False
    now = 0
    try:  # the libraries' own reservations (~0.6 GB of address space) do not count
        with open("/proc/self/status") as status:
            now = next(int(ln.split()[1]) * 1024 for ln in status if ln.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        pass
    cap = now + int(megabytes) * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return True


def _timeout(_signum: int, _frame: Any) -> None:
    raise BudgetExceeded(
        "This analysis ran longer than the server allows one request, so it was stopped. "
        "Try fewer groups or rows, or a simpler model (fewer random terms).")


@contextlib.contextmanager
def time_limit(seconds: float = SECONDS) -> Iterator[bool]:
    """Stop the code inside after ``seconds`` with BudgetExceeded (main thread of a process
    only: a worker of a process pool). Yields False, and limits nothing, elsewhere."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield False
        return
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call(fn: Callable[..., T], *args: Any, seconds: float = SECONDS, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` within the time budget; running out of memory is reported as
    BudgetExceeded with a teaching message, like running out of time."""
    try:
        with time_limit(seconds):
            return fn(*args, **kwargs)
    except MemoryError as err:
        raise BudgetExceeded(
            "This analysis needed more memory than the server allows one request, so it was "
            "stopped. Try fewer groups or rows, or fewer predictors with many categories.") from err
