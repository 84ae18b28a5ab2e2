"""Bounded caches shared by every session, the data fingerprint they key on, and figures they share."""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

import numpy as np
import orjson
import pandas as pd
import plotly.graph_objects as go

from ui.chart_spec import figure_spec


# --------------------------------------------------------------------------------------
# a bounded, thread-safe LRU cache that computes each key once
# --------------------------------------------------------------------------------------
class BoundedCache:
    """Least-recently-used cache bounded by entry count and by (estimated) bytes.

    ``get_or_compute(key, compute)`` returns the cached value, or waits for the same key
    being computed by another session, or computes it; ``compute`` returns ``(value,
    nbytes)``. Exceptions are not cached (the caller caches teaching errors as values).
    """

    def __init__(self, max_entries: int, max_mb: float) -> None:
        self.max_entries = max_entries
        self.max_bytes = int(max_mb * 2**20)
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = self.shared = self.evicted = 0

    def __len__(self) -> int:
        return len(self._data)

    def get_or_compute(self, key: Hashable, compute: Callable[[], tuple[Any, int]]) -> Any:
        for _ in range(2):  # a second round when a prefetch of the key failed unexpectedly
            with self._lock:
                if key in self._data:
                    self._data.move_to_end(key)
                    self.hits += 1
                    return self._data[key][0]
                pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = Future()
                    self.misses += 1
                    break
                self.shared += 1
            try:
                return pending.result()
            except Exception:  # noqa: BLE001 - compute it here instead
                continue
        try:
            value, nbytes = compute()
        except BaseException as err:
            self._fail(key, pending, err)
            raise
        self._store(key, pending, value, nbytes)
        return value

    def start(self, key: Hashable, launch: Callable[[], Future]) -> None:
        """Begin computing ``key`` in the background unless it is cached or under way;
        ``launch`` returns a Future of ``(value, nbytes)``. A later ``get_or_compute`` of
        the key waits for it."""
        with self._lock:
            if key in self._data or key in self._pending:
                return
            pending = self._pending[key] = Future()
            self.misses += 1
        try:
            inner = launch()
        except Exception as err:  # noqa: BLE001 - whoever asks next computes it
            self._fail(key, pending, err)
            return

        def done(f: Future) -> None:
            try:
                value, nbytes = f.result()
            except BaseException as err:  # noqa: BLE001
                self._fail(key, pending, err)
                return
            self._store(key, pending, value, nbytes)

        inner.add_done_callback(done)

    def _fail(self, key: Hashable, pending: Future, err: BaseException) -> None:
        with self._lock:
            self._pending.pop(key, None)
        pending.set_exception(err)

    def _store(self, key: Hashable, pending: Future, value: Any, nbytes: int) -> None:
        with self._lock:
            self._pending.pop(key, None)
            self._data[key] = (value, nbytes)
            self.bytes += nbytes
            while self._data and (len(self._data) > self.max_entries or self.bytes > self.max_bytes):
                _, (_, old) = self._data.popitem(last=False)
                self.bytes -= old
                self.evicted += 1
        pending.set_result(value)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._data), "bytes": self.bytes, "hits": self.hits,
                "misses": self.misses, "shared": self.shared, "evicted": self.evicted}


# --------------------------------------------------------------------------------------
# keys: a fingerprint of the data, computed once per DataFrame object
# --------------------------------------------------------------------------------------
_TOKENS: dict[int, tuple[weakref.ref, str]] = {}
_TOKENS_LOCK = threading.Lock()


def _values_bytes(values: Any) -> bytes:
    """The bytes of one column's (or an index level's) values: numeric, boolean and datetime
    arrays as they lie in memory, anything else (text, categories' values, mixed objects,
    missing markers) as the reprs of its values, NUL-separated (a repr never holds a NUL)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biufcmM":
        return np.ascontiguousarray(arr).tobytes()
    return "\0".join(map(repr, arr.tolist())).encode("utf-8", "surrogatepass")


def data_token(data: pd.DataFrame) -> str:
    """A fingerprint of a DataFrame's values, index, columns and dtypes, remembered for as
    long as the object lives (a page passes the same one to several calls).

    Hashes the raw bytes of numeric columns and the reprs of the others with blake2b rather
    than through ``pd.util.hash_pandas_object``: that costs ~0.1 ms per text column even for
    two rows (pandas' text is Arrow-backed), and the pages key their cached tables and
    figures on dozens of small fresh frames per rerun (a class of 36: 7% of the server's
    time went there). Equal tokens mean equal values, dtypes, labels and order; a category
    column also hashes its categories and whether they are ordered.
    """
    with _TOKENS_LOCK:
        hit = _TOKENS.get(id(data))
        if hit is not None and hit[0]() is data:
            return hit[1]

    h = hashlib.blake2b(digest_size=16)

    def put(part: bytes) -> None:
        h.update(len(part).to_bytes(8, "little"))  # a length prefix: no two splits alike
        h.update(part)

    put(repr((tuple(map(repr, data.columns)), tuple(map(str, data.dtypes)), data.shape,
              tuple(map(repr, data.index.names)), str(data.index.dtype))).encode())
    index = data.index
    for level in range(index.nlevels):
        put(_values_bytes(index.get_level_values(level)))
    for _, col in data.items():
        if isinstance(col.dtype, pd.CategoricalDtype):
            put(repr((col.cat.ordered, col.cat.categories.tolist())).encode())
        put(_values_bytes(col.to_numpy()))
    token = h.hexdigest()
    with _TOKENS_LOCK:
        if len(_TOKENS) > 4096:  # drop fingerprints of DataFrames that are gone
            for k in [k for k, (ref, _) in _TOKENS.items() if ref() is None]:
                del _TOKENS[k]
        _TOKENS[id(data)] = (weakref.ref(data), token)
    return token


class SharedFigure(go.Figure):
    """A cached figure that every session draws: its dict is made once.

    ``st.plotly_chart`` calls ``to_dict()``, which deep-copies the whole figure (5-40 ms a
    chart, on every rerun of every session). A shared figure is never modified (the caches'
    contract), so one copy serves every draw: the browser's version of it
    (``chart_spec.figure_spec``: drawn once per mount instead of twice).
    """

    def to_dict(self) -> dict[str, Any]:
        spec = self.__dict__.get("_shared_dict")
        if spec is None:
            spec = self.__dict__["_shared_dict"] = figure_spec(self)
        return spec


def figure_bytes(figure: SharedFigure) -> int:
    """The memory a cached shared figure holds: plotly's objects (~80 KB even for a bar chart)
    and the browser's spec kept beside them, ~6 bytes per byte of its JSON (tracemalloc on the
    app's figures: 156-251 KB for the example pages' charts). Makes the spec now: it is
    needed at the figure's first draw anyway."""
    return 96 * 1024 + 6 * len(orjson.dumps(figure.to_dict(), default=str))


def shared(figure: Any) -> Any:
    """``figure`` marked as a SharedFigure (its class only: no copy)."""
    if type(figure) is go.Figure:
        figure.__class__ = SharedFigure
    return figure
