"""Cached engine calls: pages pass the engine function itself; results and errors are cached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mmteach import errors
from mmteach.errors import MMTeachError


def _name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


@st.cache_data(show_spinner=False, max_entries=512)
def _cached_call(_fn: Callable[..., Any], fn_name: str, data: pd.DataFrame, args: tuple,
                 kwargs: tuple) -> tuple[bool, Any]:
    # The function itself is not hashed (leading underscore); its qualified name is the key.
    # Errors are cached too (as text) so an unfittable setting does not refit on each rerun.
    try:
        return True, _fn(data, *args, **dict(kwargs))
    except MMTeachError as err:
        return False, (type(err).__name__, str(err))


def call(fn: Callable[..., Any], data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
    """``fn(data, *args, **kwargs)`` through the cache, keyed by the data and every argument.

    Raises the engine's MMTeachError subclass (ModelError, DataError, ...) with its message
    when the call fails on purpose.
    """
    kw = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
    ok, value = _cached_call(fn, _name(fn), data, tuple(args), kw)
    if not ok:
        cls_name, message = value
        raise getattr(errors, cls_name, MMTeachError)(message)
    return value


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_fig(_builder: Callable[..., go.Figure], name: str, data: pd.DataFrame, args: tuple,
                kwargs: tuple) -> go.Figure:
    return _builder(data, *args, **dict(kwargs))


def fig(builder: Callable[..., go.Figure], data: pd.DataFrame, *args: Any, **kwargs: Any) -> go.Figure:
    """A figure from an ``mmteach.figures`` builder, cached on the data and arguments
    (the many-panel plots take a few hundred ms to build; a cache hit is ~30 ms)."""
    return _cached_fig(builder, _name(builder), data, tuple(args), tuple(sorted(kwargs.items())))


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
            msg = f"**{label}: {teach}**\n\nDetail: {err}" if teach else f"{label}: {err}"
            if self.defer:
                self.errors.append(msg)
            else:
                st.error(msg)
            return None
        self.fits[label] = res
        self.code[label] = (res.r_code() if hasattr(res, "r_code") else "", python_call(fn, *args, **kwargs))
        return res
