"""Control values in session state and in the URL (shareable links), and presentation mode."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

PRESENT_KEY = "presentation"


@dataclass(frozen=True)
class Param:
    """One control's default and the values a URL may set it to."""

    default: Any
    choices: Sequence[Any] | None = None
    lo: float | None = None
    hi: float | None = None


def _parse(text: str, spec: Param) -> Any:
    """Turn URL text into a control value of the default's type; ValueError if it is bad."""
    d = spec.default
    if isinstance(d, bool):
        if text not in ("0", "1", "true", "false"):
            raise ValueError(text)
        value: Any = text in ("1", "true")
    elif isinstance(d, int):
        value = int(text)
    elif isinstance(d, float):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
    elif isinstance(d, (list, tuple)):
        value = [v for v in text.split(",") if v] if text else []
        if spec.choices is not None and any(v not in spec.choices for v in value):
            raise ValueError(text)
        return value
    else:
        value = text
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(text)
    if spec.lo is not None and value < spec.lo:
        value = type(d)(spec.lo)
    if spec.hi is not None and value > spec.hi:
        value = type(d)(spec.hi)
    return value


def _clamp(value: Any, spec: Param) -> Any:
    """Keep a number inside its control's range (a slider refuses a value outside it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if spec.lo is not None and value < spec.lo:
        return type(spec.default)(spec.lo)
    if spec.hi is not None and value > spec.hi:
        return type(spec.default)(spec.hi)
    return value


def _unparse(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


class PageState:
    """Controls of one page whose values live in session state and in the URL.

    Usage: ``ps = PageState("freq", {"reml": Param(True)})``; give widgets
    ``key=ps.key("reml")``; call ``ps.sync()`` after the last widget. On a session's first
    run of the page the URL's query parameters set the controls (bad values are ignored
    with a warning); after that the controls write the URL.
    """

    def __init__(self, page: str, params: Mapping[str, Param]) -> None:
        self.page = page
        self.params: dict[str, Param] = {}
        self._bad: list[str] = []
        self._first = f"_{page}_loaded" not in st.session_state
        # link values another module sets for this run, e.g. data=original (ui/sources.py)
        self._extra: dict[str, str] = dict(st.session_state.pop("_url_extra", {}))
        self.add(params)
        st.session_state[f"_{page}_loaded"] = True

    def key(self, name: str) -> str:
        """The session-state key of control ``name``."""
        return f"{self.page}.{name}"

    def add(self, params: Mapping[str, Param], *, data_token: str | None = None) -> None:
        """Declare controls (may be called again, e.g. once the mice are known).

        ``data_token`` names the data the controls refer to (e.g. the source label): when
        it changes (an original file was uploaded, or dropped), these controls go back to
        their defaults, since e.g. the cells per mouse of one file mean nothing for another.
        """
        reset = False
        if data_token is not None:
            token_key = f"_{self.page}.data_token"
            reset = st.session_state.get(token_key, data_token) != data_token
            st.session_state[token_key] = data_token
        for name, spec in params.items():
            self.params[name] = spec
            k = self.key(name)
            if reset:
                st.session_state[k] = spec.default
                continue
            if self._first and name in st.query_params:
                try:
                    st.session_state[k] = _parse(st.query_params[name], spec)
                    continue
                except ValueError:
                    self._bad.append(name)
            if k not in st.session_state:
                # a widget's value is dropped when its page is left: restore the last one
                saved = st.session_state.get(f"_saved.{k}", spec.default)
                ok = spec.choices is None or isinstance(saved, list) or saved in spec.choices
                st.session_state[k] = saved if ok else spec.default
            st.session_state[k] = _clamp(st.session_state[k], spec)

    def __getitem__(self, name: str) -> Any:
        return st.session_state[self.key(name)]

    def set(self, name: str, value: Any) -> None:
        """Set a control's value (only before its widget is drawn, or in a callback)."""
        st.session_state[self.key(name)] = value

    def sync(self) -> None:
        """Write every control to the URL (and remember it for when the page is left)."""
        if self._bad:
            st.warning("Ignored link settings that are not valid here: " + ", ".join(self._bad))
        values = {PRESENT_KEY: "1"} if st.session_state.get(PRESENT_KEY) else {}
        values.update(self._extra)
        for name in self.params:
            value = st.session_state.get(self.key(name), self.params[name].default)
            st.session_state[f"_saved.{self.key(name)}"] = value
            values[name] = _unparse(value)
        if dict(st.query_params) != values:
            st.query_params.from_dict(values)


def presenting() -> bool:
    """True when the sidebar's presentation mode is on."""
    return bool(st.session_state.get(PRESENT_KEY, False))
