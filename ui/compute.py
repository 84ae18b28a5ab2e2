"""Cached engine calls shared by every session: pages pass the engine function; costly ones run in a process pool.

``call(fn, data, ...)`` keys a result on the function's name, a fingerprint of the data and
every argument, and keeps it in one bounded in-memory cache that all sessions share
(results are immutable, so a hit costs a dictionary look-up, not an unpickle). A miss runs
in a process pool created once per server (``st.cache_resource``), so two cores serve two
students at once and one student's slow fit never holds the interpreter lock the other
sessions need; calls that prove cheaper than a pool round trip run in place. Identical
requests that arrive while one is computing wait for it instead of computing it again.
``fig(builder, data, ...)`` keeps built figures the same way (building one costs 0.1-0.4 s,
unpickling a cached one almost as much). Both caches are bounded in entries and in memory,
least recently used first out, so a day-long workshop does not grow without limit.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mmteach import errors
from mmteach.errors import MMTeachError
from ui.cache import BoundedCache, data_token, figure_bytes, shared
from ui.display import escape_markdown
from ui.pool_worker import run_packed, run_reporting, start_worker

# Bounds (entries, MB); the environment may change them for a bigger or smaller server.
RESULT_ENTRIES = int(os.environ.get("MMTEACH_CACHE_ENTRIES", 2048))
RESULT_MB = float(os.environ.get("MMTEACH_CACHE_MB", 384))
FIG_ENTRIES = int(os.environ.get("MMTEACH_FIG_CACHE_ENTRIES", 512))
FIG_MB = float(os.environ.get("MMTEACH_FIG_CACHE_MB", 128))
# Worker processes of the pool (0: compute everything in the server process).
WORKERS = int(os.environ.get("MMTEACH_WORKERS", os.cpu_count() or 1))
# A function whose calls average less than this runs in place: a pool round trip (pickling
# the data there and the result back) costs a few ms, and a short fit queued behind a long
# one (the amplitude page's LRT ladder takes seconds) would wait for all of it. Sending the
# 10-50 ms fits to the pool too (0.01) made a class slower: 40 students on two replicas,
# alternated twice, change p95 1.92 and 2.45 s against 1.62 and 1.89 s (frequency page 2.1
# and 2.8 s against 1.0 and 1.0 s; 3 Dec 2026). MMTEACH_INLINE_S changes it.
INLINE_S = float(os.environ.get("MMTEACH_INLINE_S", 0.05))
# Modules the pool's fork server imports once, so a new worker starts in milliseconds.
# statsmodels too: mmteach.marginal imports it on a GEE's first call, 0.7 s of the first
# water-lick data change in each new worker otherwise.
PRELOAD = ["numpy", "pandas", "scipy.optimize", "mmteach.lme", "mmteach.lm", "mmteach.glmm",
           "mmteach.compare", "mmteach.marginal", "mmteach.bayes", "mmteach.subsample", "statsmodels.api",
           "ui.pool_worker"]


def import_preloaded() -> None:
    """Import in this (the server) process what the pool's workers preload: a call that
    proves cheap runs here (see _compute), and the engine imports some libraries on first
    use (statsmodels for the GLM): 0.37 s under the interpreter lock in the middle of a
    student's rerun, in a one-student trace of the water-lick page. ui.warm calls it."""
    for name in PRELOAD:
        importlib.import_module(name)


def _name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


RESULTS = BoundedCache(RESULT_ENTRIES, RESULT_MB)
FIGURES = BoundedCache(FIG_ENTRIES, FIG_MB)


def _freeze(value: Any) -> Hashable:
    """A hashable form of an argument (lists and dicts become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(map(_freeze, value)))
    if isinstance(value, pd.DataFrame):
        return ("DataFrame", data_token(value))
    return value


def _key(fn: Callable[..., Any], data: pd.DataFrame, args: tuple, kwargs: dict) -> Hashable:
    return (_name(fn), data_token(data), _freeze(args), _freeze(kwargs))


# --------------------------------------------------------------------------------------
# the process pool
# --------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _pool(workers: int) -> ProcessPoolExecutor:
    """One pool per server, shared by every session (created at its first use). A worker
    started during a rerun re-imports app.py as "__mp_main__", where it only defines (the
    guard at the end of app.py)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    # each worker may grow by mmteach.budget.MEGABYTES: one student's huge request fails alone
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=start_worker)


class _Costs:
    """Average run time of each engine function, to decide pool or in place; and the run
    time of each cached call (bounded like the result cache), for sentences such as "one
    refit of both models took 0.08 s here"."""

    def __init__(self) -> None:
        self._avg: dict[str, float] = {}
        self._n: dict[str, int] = {}
        self._by_key: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float, key: Hashable = None) -> None:
        with self._lock:
            n = self._n.get(name, 0)
            self._avg[name] = seconds if n == 0 else 0.8 * self._avg[name] + 0.2 * seconds
            self._n[name] = n + 1
            if key is not None:
                self._by_key[key] = seconds
                self._by_key.move_to_end(key)
                while len(self._by_key) > RESULT_ENTRIES:
                    self._by_key.popitem(last=False)

    def of_key(self, key: Hashable) -> float | None:
        with self._lock:
            return self._by_key.get(key)

    def cheap(self, name: str) -> bool:
        return self._n.get(name, 0) >= 2 and self._avg[name] < INLINE_S


COSTS = _Costs()


# Functions whose results cannot cross a process boundary (e.g. a result holding a sparse
# Cholesky factor): computed in place from then on.
_UNPOOLABLE: set[str] = set()
UNKNOWN_BYTES = 512 * 1024  # the size assumed for a result that cannot be pickled


def _compute(fn: Callable[..., Any], data: pd.DataFrame, args: tuple, kwargs: dict,
             in_place: bool = False) -> tuple[Any, int]:
    name = _name(fn)
    key = _key(fn, data, args, kwargs)
    if WORKERS > 0 and not in_place and not COSTS.cheap(name) and name not in _UNPOOLABLE:
        try:
            packed, seconds = _pool(WORKERS).submit(run_packed, fn, data, args, kwargs).result()
            COSTS.add(name, seconds, key)
            return pickle.loads(packed), len(packed)
        except BrokenProcessPool:
            _pool.clear()  # a worker died (e.g. out of memory): start a new pool next time
        except (pickle.PicklingError, AttributeError, TypeError):
            _UNPOOLABLE.add(name)  # the call or its result does not pickle: compute here
    t0 = time.perf_counter()
    try:
        out: tuple[bool, Any] = (True, fn(data, *args, **kwargs))
    except MMTeachError as err:
        out = (False, (type(err).__name__, str(err)))
    COSTS.add(name, time.perf_counter() - t0, key)
    try:
        nbytes = len(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - not picklable: count it as a large entry
        nbytes = UNKNOWN_BYTES
    return out, nbytes


def _launch(fn: Callable[..., Any], data: pd.DataFrame, args: tuple, kwargs: dict) -> Future:
    """Submit a call to the pool; the Future gives ``(result, nbytes)`` like ``_compute``."""
    out: Future = Future()
    inner = _pool(WORKERS).submit(run_packed, fn, data, args, kwargs)

    def done(f: Future) -> None:
        try:
            packed, seconds = f.result()
            COSTS.add(_name(fn), seconds, _key(fn, data, args, kwargs))
            out.set_result((pickle.loads(packed), len(packed)))
        except BaseException as err:  # noqa: BLE001 - handed to whoever waits (who computes it)
            if isinstance(err, BrokenProcessPool):
                _pool.clear()
            elif isinstance(err, (pickle.PicklingError, AttributeError, TypeError)):
                _UNPOOLABLE.add(_name(fn))
            out.set_exception(err)

    inner.add_done_callback(done)
    return out


def background(fn: Callable[..., Any], *args: Any, progress: Callable[[int, int], None] | None = None,
               poll_s: float = 0.25, **kwargs: Any) -> Any:
    """``fn(*args, progress=..., **kwargs)`` for a long run a student starts on purpose (a
    bootstrap, a simulation): computed in the pool, so it takes one core and never stalls
    the other students' pages; ``progress(done, total)`` is relayed from the worker while
    this session waits. Not cached. Raises the engine's teaching errors like ``call``."""
    import tempfile

    if WORKERS <= 0:
        return fn(*args, progress=progress or (lambda done, total: None), **kwargs)
    fd, path = tempfile.mkstemp(prefix="mmteach-progress-")
    os.close(fd)
    try:
        future = _pool(WORKERS).submit(run_reporting, fn, path, args, kwargs)
        seen = ""

        def relay() -> None:
            nonlocal seen
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                return
            if progress is not None and text and text != seen:
                seen = text
                done, total = map(int, text.split())
                progress(done, total)  # also where Streamlit stops a run the student left

        while True:
            try:
                packed = future.result(timeout=poll_s)
                break
            except TimeoutError:
                relay()
        relay()  # the last step (the bar reaches its end)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    ok, value = pickle.loads(packed)
    if not ok:
        cls_name, message = value
        raise getattr(errors, cls_name, MMTeachError)(message)
    return value


# --------------------------------------------------------------------------------------
# what the pages call
# --------------------------------------------------------------------------------------
def _cached(fn: Callable[..., Any], data: pd.DataFrame, args: tuple, kwargs: dict, in_place: bool) -> Any:
    key = _key(fn, data, args, kwargs)
    ok, value = RESULTS.get_or_compute(key, lambda: _compute(fn, data, args, kwargs, in_place=in_place))
    _remember(value, key)
    if not ok:
        cls_name, message = value
        raise getattr(errors, cls_name, MMTeachError)(message)
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return value.copy()  # a page may add columns; the cached one stays as computed
    return value


def call(fn: Callable[..., Any], data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
    """``fn(data, *args, **kwargs)`` through the shared cache, keyed by the data and every argument.

    Raises the engine's MMTeachError subclass (ModelError, DataError, ...) with its message
    when the call fails on purpose (the failure is cached too, so an unfittable setting does
    not refit on each rerun). Results are shared between sessions: do not modify them.
    """
    return _cached(fn, data, args, kwargs, in_place=False)


def here(fn: Callable[..., Any], data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
    """Like :func:`call` (same cache, same keys), always computed in the server process: for
    quick data handling (a subsample, cell counts) that a pool round trip would only slow down."""
    return _cached(fn, data, args, kwargs, in_place=True)


def seconds(fn: Callable[..., Any], data: pd.DataFrame, *args: Any, **kwargs: Any) -> float | None:
    """How long ``call(fn, data, *args, **kwargs)`` took to compute (in this server, on these
    data), or None when it was not computed here or its time was forgotten."""
    return COSTS.of_key(_key(fn, data, args, kwargs))


def prefetch(fn: Callable[..., Any], data: pd.DataFrame, *args: Any, **kwargs: Any) -> None:
    """Start ``call(fn, data, *args, **kwargs)`` in the pool and return at once, so a page
    that needs several slow results (e.g. the LRT ladder) has them computed side by side
    on every core; its later ``call`` of the same arguments waits for the result."""
    if WORKERS > 0 and not COSTS.cheap(_name(fn)) and _name(fn) not in _UNPOOLABLE:
        RESULTS.start(_key(fn, data, args, kwargs), lambda: _launch(fn, data, args, kwargs))


# Which cached result an object is (by identity, checked through a weak reference), so a
# table or figure derived from results can be cached on the results' keys.
_RESULT_KEYS: dict[int, tuple[weakref.ref, Hashable]] = {}
_RESULT_KEYS_LOCK = threading.Lock()


def _remember(value: Any, key: Hashable) -> None:
    try:
        ref = weakref.ref(value)
    except TypeError:  # not weakly referable (e.g. a tuple): derived() will not cache on it
        return
    with _RESULT_KEYS_LOCK:
        if len(_RESULT_KEYS) > 8192:
            for k in [k for k, (r, _) in _RESULT_KEYS.items() if r() is None]:
                del _RESULT_KEYS[k]
        _RESULT_KEYS[id(value)] = (ref, key)


class _Uncacheable(Exception):
    pass


def _derived_key(value: Any) -> Hashable:
    """Like _freeze, but a cached result stands for its own key; anything else that is not
    a plain value makes the call uncacheable."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, pd.DataFrame):
        return ("DataFrame", data_token(value))
    if isinstance(value, (list, tuple)):
        return tuple(_derived_key(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _derived_key(v)) for k, v in value.items())  # order matters (rows)
    hit = _RESULT_KEYS.get(id(value))
    if hit is not None and hit[0]() is value:
        return ("result", hit[1])
    raise _Uncacheable


def derived(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` cached when its arguments are plain values, DataFrames and
    results of ``call``: the tables and figures a page derives from its fits (comparison
    rows, forest plots) are then built once for every session that shows the same fits.
    DataFrames come back as copies; figures are shared (draw them, do not modify them)."""
    try:
        key = ("derived", _name(fn), _derived_key(args), _derived_key(kwargs))
    except _Uncacheable:
        return fn(*args, **kwargs)

    def build() -> tuple[Any, int]:
        value = fn(*args, **kwargs)
        if isinstance(value, go.Figure):
            return shared(value), figure_bytes(value)
        if isinstance(value, (pd.DataFrame, pd.Series)):
            return value, int(value.memory_usage(deep=True).sum()) if isinstance(value, pd.DataFrame) \
                else int(value.memory_usage(deep=True))
        return value, 4096

    value = FIGURES.get_or_compute(key, build)
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return value.copy()
    _remember(value, key)  # a figure or table built from this value is cached on it in turn
    return value


def fig(builder: Callable[..., go.Figure], data: pd.DataFrame, *args: Any, **kwargs: Any) -> go.Figure:
    """A figure from an ``mmteach.figures`` builder, cached on the data and arguments and
    shared by every session: draw it, do not modify it (``display.show_fig`` copies it
    before restyling it for presentation mode)."""
    key = _key(builder, data, args, kwargs)

    def build() -> tuple[go.Figure, int]:
        figure = builder(data, *args, **kwargs)
        return shared(figure), figure_bytes(figure)

    return FIGURES.get_or_compute(key, build)


def stats() -> dict[str, dict[str, int]]:
    """Entries, bytes, hits and misses of both caches (for tests and the load test)."""
    return {"results": RESULTS.stats(), "figures": FIGURES.stats()}


def python_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The mmteach call a student can paste, e.g. ``fit_lm(data, 'res ~ x', factors=['x'])``."""

    def shown(v: Any) -> str:
        return repr(list(v)) if isinstance(v, tuple) else repr(v)

    parts = ["data", *map(shown, args), *(f"{k}={shown(v)}" for k, v in kwargs.items())]
    return f"{fn.__name__}({', '.join(parts)})"


class Analyses:
    """The fits a page shows side by side: results, their R/mmteach code, and errors.

    ``run`` calls an engine function through the cache. A fit that fails on purpose shows
    its teaching message (``teach`` first, the engine's text as detail) at once with
    ``st.error``, or is kept in ``errors`` for the page to show later when ``defer``.
    """

    def __init__(self, data: pd.DataFrame, *, defer: bool = False) -> None:
        self.data = data
        self.defer = defer
        self.fits: dict[str, Any] = {}
        self.code: dict[str, tuple[str, str]] = {}
        self.errors: list[str] = []

    def run(self, label: str, fn: Callable[..., Any], *args: Any, teach: str | None = None,
            **kwargs: Any) -> Any:
        try:
            res = call(fn, self.data, *args, **kwargs)
        except MMTeachError as err:
            # user text (column names in labels, formulas in errors) escaped: never live Markdown
            esc = escape_markdown
            msg = (f"**{esc(f'{label}: {teach}')}**  \n{esc(f'Detail: {err}')}" if teach
                   else esc(f"{label}: {err}"))
            if self.defer:
                self.errors.append(msg)
            else:
                st.error(msg)
            return None
        self.fits[label] = res
        self.code[label] = (res.r_code() if hasattr(res, "r_code") else "", python_call(fn, *args, **kwargs))
        return res
