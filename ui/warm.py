"""Open every page, and its costliest one-click states, once in the background at server start (warm caches)."""

from __future__ import annotations

import asyncio
import threading
import time
from urllib.parse import urlencode

import streamlit as st

from mmteach.examples import WATER_LICK
from ui import compute

PAGE_TIMEOUT_S = 300.0  # a cold page on a busy 2-core machine takes well under this
# States one click away from a page's defaults that cost seconds when cold, warmed after
# the defaults: the water-lick page's random-slope GLMM with its LRT and Bayesian twins
# (the first switch to it, in Chromium: 1.3-1.4 s cold, 0.6 s warm; 3 Dec 2026, speed probe 17-20 ms).
ONE_CLICK = (("water-lick", urlencode({"structure": list(WATER_LICK.structures)[1]})),)


def start(pages: tuple[str, ...]) -> threading.Thread | None:
    """Warm the pages once per server process (see _start); nothing in a session that did
    not come through the server's websocket (AppTest, bare ``python app.py``)."""
    if not st.context.headers:
        return None
    return _start(targets(pages))


def targets(pages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(URL path, query string) of each state to warm: every page on its defaults first,
    then the costly states of ONE_CLICK whose page is among ``pages``."""
    return tuple((page, "") for page in pages) + tuple(t for t in ONE_CLICK if t[0] in pages)


@st.cache_resource(show_spinner=False)
def _start(pages: tuple[tuple[str, str], ...]) -> threading.Thread:
    """Start (once per server process) a thread that opens each page, by its URL path and
    query string, in a session of its own: every fit and figure a page shows before a
    student touches it lands in the shared caches of ``ui.compute``. Called by app.py, so
    it begins with the server's first session (the instructor opening the app)."""
    address = st.get_option("server.address") or "127.0.0.1"
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "") else address
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    url = f"ws://{host}:{st.get_option('server.port')}/{base + '/' if base else ''}_stcore/stream"
    thread = threading.Thread(target=_warm_up, args=(url, pages), daemon=True, name="mmteach-warm-up")
    thread.start()
    return thread


def _warm_up(url: str, pages: tuple[tuple[str, str], ...]) -> None:
    compute.import_preloaded()  # before the pages: their cheap calls run in this process
    asyncio.run(_open_all(url, pages))


async def _open_all(url: str, pages: tuple[tuple[str, str], ...]) -> None:
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    for page, query in pages:  # one at a time: the students arriving meanwhile get the cores too
        try:
            async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=30,
                                          ping_interval=None) as ws:
                msg = BackMsg()
                msg.rerun_script.page_name = page
                msg.rerun_script.query_string = query
                await ws.send(msg.SerializeToString())
                deadline = time.monotonic() + PAGE_TIMEOUT_S
                while (left := deadline - time.monotonic()) > 0:
                    reply = ForwardMsg()
                    reply.ParseFromString(await asyncio.wait_for(ws.recv(), timeout=left))
                    if reply.WhichOneof("type") == "script_finished":
                        break
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
            continue  # warming is an optimisation: a page that fails here fails for students too
