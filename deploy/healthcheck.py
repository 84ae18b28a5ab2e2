"""Container health check that also warms the app: healthy when /_stcore/health answers; the
first time, it opens one session, which starts the server's warm-up of every page
(ui/warm.py), so the first students of every replica find warm caches."""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from pathlib import Path

PORT = 8501
MARK = Path("/tmp/mmteach-warm-started")


async def _open_once() -> None:
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    async with websockets.connect(f"ws://127.0.0.1:{PORT}/_stcore/stream", subprotocols=["streamlit"],
                                  max_size=None, open_timeout=10) as ws:
        msg = BackMsg()
        msg.rerun_script.page_name = "overview"
        await ws.send(msg.SerializeToString())
        for _ in range(10_000):  # bounded: the overview page sends a few hundred messages
            reply = ForwardMsg()
            reply.ParseFromString(await asyncio.wait_for(ws.recv(), timeout=60))
            if reply.WhichOneof("type") == "script_finished":
                return


def main() -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/_stcore/health", timeout=4) as r:
            if r.status != 200:
                return 1
    except OSError:
        return 1
    if not MARK.exists():
        try:
            asyncio.run(_open_once())
            MARK.touch()
        except Exception:  # noqa: BLE001 - warming is optional; try again at the next check
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
