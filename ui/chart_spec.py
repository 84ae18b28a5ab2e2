"""The figure dict Streamlit ships to the browser, shaped so that a chart is drawn once.

Streamlit's chart component calls ``Plotly.react`` twice on every chart it mounts: once
with the spec, then again with a JSON round trip of it (a theming effect that runs after
mount). plotly.js redraws the whole chart on the second call unless it can tell nothing
changed, and it cannot when the spec has

- a ``layout.template`` (an object plotly.js compares by identity, so a copy is a change),
- data arrays as base64 typed arrays (plotly's default since 6.0; a typed array is never
  compared by value), or
- no ``layout.datarevision`` (without one, plotly.js treats every new array as new data).

Measured in Chromium on the amplitude page (a data change mounts four charts): nine full
plots per change before, four after; the page's median control change went from 0.76 and
0.83 s to 0.68 and 0.61 s (`tools/loadtest.py --sweep --pages amplitude`, old and new
alternated twice; whole-app sweeps scatter more, see the README's hosting section).
This module makes specs without those three: the template's defaults are written into
the figure itself (so the chart looks the same), arrays become lists and the data get a
revision (a hash of the content).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from typing import Any

import numpy as np
import orjson

# plotly's typed-array codes (plotly.js's, see _plotly_utils.utils.plotlyjsShortTypes)
_DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "i1", "u1": "u1", "i2": "<i2", "u2": "<u2",
           "i4": "<i4", "u4": "<u4", "i8": "<i8", "u8": "<u8"}
_AXIS = re.compile(r"^([xy])axis\d*$")
# template sections for subplot kinds the app never draws: written into a layout they
# would only add weight (plotly.js ignores a subplot no trace uses)
_UNUSED_SUBPLOTS = ("polar", "ternary", "scene", "geo", "mapbox", "map", "smith", "coloraxis")
# trace types drawn without x/y axes: no axis is made for them
_AXISLESS = ("table", "pie", "sunburst", "treemap", "icicle", "funnelarea", "sankey", "parcoords",
             "parcats", "indicator", "choropleth", "scattergeo", "scattermap", "scattermapbox",
             "scatterpolar", "scatterpolargl", "barpolar", "scatterternary", "scatter3d", "surface",
             "mesh3d", "cone", "streamtube", "volume", "isosurface", "carpet", "scattercarpet",
             "contourcarpet", "splom")


def _decoded(value: dict[str, Any]) -> list[Any]:
    """A plotly typed-array spec ({"dtype", "bdata"[, "shape"]}) as a (nested) list."""
    array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=_DTYPES[value["dtype"]])
    if "shape" in value:
        array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
    return array.tolist()


def _as_lists(value: Any) -> Any:
    """``value`` with every typed-array spec and numpy array replaced by plain lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value and value["dtype"] in _DTYPES:
            return _decoded(value)
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fill(target: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Give ``target`` the ``defaults`` it does not set itself (in place, recursively):
    how plotly.js applies a template."""
    for key, default in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and isinstance(target[key], dict):
            _fill(target[key], default)


def bake_template(spec: dict[str, Any]) -> dict[str, Any]:
    """Write ``spec``'s ``layout.template`` into the layout and traces and drop it (in place).

    As plotly.js applies a template: its layout values where the figure sets none, its
    ``xaxis``/``yaxis`` on every x/y axis, ``annotationdefaults``/``shapedefaults`` on
    every annotation/shape, and ``data[type][i % n]`` on the i-th trace of each type.
    """
    layout = spec.setdefault("layout", {})
    template = layout.pop("template", None)
    if not isinstance(template, dict):
        return spec
    traces = spec.get("data") or []
    # every axis the traces use, also those the layout does not name
    for trace in traces:
        if trace.get("type", "scatter") in _AXISLESS:
            continue
        for letter in ("x", "y"):
            ref = trace.get(f"{letter}axis", letter)
            layout.setdefault(f"{letter}axis{ref[1:]}", {})
    for key, default in (template.get("layout") or {}).items():
        if key in ("xaxis", "yaxis"):
            for name in layout:
                match = _AXIS.match(name)
                if match and match.group(1) == key[0] and isinstance(layout[name], dict):
                    _fill(layout[name], default)
        elif key.endswith("defaults"):  # annotationdefaults -> every layout.annotations[i]
            for item in layout.get(key[: -len("defaults")] + "s") or ():
                _fill(item, default)
        elif key in _UNUSED_SUBPLOTS and key not in layout:
            continue
        elif key not in layout:
            layout[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and isinstance(layout[key], dict):
            _fill(layout[key], default)
    by_type = template.get("data") or {}
    seen: dict[str, int] = {}
    for trace in traces:
        kind = trace.get("type", "scatter")
        options = by_type.get(kind) or []
        if options:
            i = seen.get(kind, 0)
            seen[kind] = i + 1
            _fill(trace, {k: v for k, v in options[i % len(options)].items() if k != "type"})
    return spec


def browser_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (a figure's ``to_dict()``) as Streamlit should ship it: lists for arrays, the
    template written in, and a ``layout.datarevision`` that is a hash of the content."""
    out = bake_template(_as_lists(spec))  # _as_lists copies: ``spec`` is left as it was
    layout = out["layout"]
    layout.pop("datarevision", None)
    # orjson (plotly's own encoder here): json.dumps took half of this function's time
    digest = hashlib.blake2b(orjson.dumps(out, option=orjson.OPT_SORT_KEYS, default=str), digest_size=8)
    layout["datarevision"] = digest.hexdigest()
    return out


def figure_spec(figure: Any) -> dict[str, Any]:
    """:func:`browser_spec` of a plotly figure, read from the figure's own data and layout
    dicts: ``to_dict()`` deep-copies them and base64-encodes every array that this then
    decodes again (10 ms against 3 ms for the amplitude page's spaghetti plot).
    ``tests/test_chart_spec.py`` checks it gives what ``browser_spec(figure.to_dict())`` does."""
    props = getattr(figure, "_data", None), getattr(figure, "_layout", None)
    if not isinstance(props[0], list) or not isinstance(props[1], dict) or getattr(figure, "_frame_objs", None):
        return browser_spec(figure.to_dict())  # not the plotly internals this was written for
    return browser_spec({"data": props[0], "layout": props[1]})
