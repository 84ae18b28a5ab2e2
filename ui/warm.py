"""Open every page once in the background when the server starts, so the first class finds warm caches."""

from __future__ import annotations

import asyncio
import threading
import time

import streamlit as st

PAGE_TIMEOUT_S = 300.0  # a cold page on a busy 2-core machine takes well under this


@st.cache_resource(show_spinner=False)
def start(pages: tuple[str, ...]) -> threading.Thread:
    """Start (once per server process) a thread that opens each page, by its URL path, in
    a session of its own on the defaults: every fit and figure a page shows before a
    student touches it lands in the shared caches of ``ui.compute``. Called by app.py, so
    it begins with the server's first session (the instructor opening the app)."""
    address = st.get_option("server.address") or "127.0.0.1"
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "") else address
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    url = f"ws://{host}:{st.get_option('server.port')}/{base + '/' if base else ''}_stcore/stream"
    thread = threading.Thread(target=lambda: asyncio.run(_open_all(url, pages)), daemon=True,
                              name="mmteach-warm-up")
    thread.start()
    return thread


async def _open_all(url: str, pages: tuple[str, ...]) -> None:
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    for page in pages:  # one at a time: the students arriving meanwhile get the cores too
        try:
            async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=30,
                                          ping_interval=None) as ws:
                msg = BackMsg()
                msg.rerun_script.page_name = page
                await ws.send(msg.SerializeToString())
                deadline = time.monotonic() + PAGE_TIMEOUT_S
                while (left := deadline - time.monotonic()) > 0:
                    reply = ForwardMsg()
                    reply.ParseFromString(await asyncio.wait_for(ws.recv(), timeout=left))
                    if reply.WhichOneof("type") == "script_finished":
                        break
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
            continue  # warming is an optimisation: a page that fails here fails for students too
