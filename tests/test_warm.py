"""The server's warm-up (ui/warm.py): which page states it opens, and that each opens the state it names."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from mmteach.examples import WATER_LICK
from ui import warm

websockets = pytest.importorskip("websockets")


def test_targets_are_every_page_then_the_costly_one_click_states():
    pages = ("overview", "water-lick", "simulation")
    got = warm.targets(pages)
    assert got[:3] == (("overview", ""), ("water-lick", ""), ("simulation", ""))
    slope = list(WATER_LICK.structures)[1]
    assert ("water-lick", warm.ONE_CLICK[0][1]) in got[3:]
    assert parse_qs(warm.ONE_CLICK[0][1]) == {"structure": [slope]}
    assert warm.targets(("overview",)) == (("overview", ""),)  # no state of a page that is not there


def test_the_warm_up_asks_for_each_page_with_its_query_string():
    """A stand-in for Streamlit's websocket on loopback records each rerun request the
    warm-up sends (one connection per state, one after the other) and answers it finished."""
    seen: list[tuple[str, str]] = []

    async def serve(ws) -> None:
        msg = BackMsg()
        msg.ParseFromString(await ws.recv())
        seen.append((msg.rerun_script.page_name, msg.rerun_script.query_string))
        done = ForwardMsg()
        done.script_finished = ForwardMsg.FINISHED_SUCCESSFULLY
        await ws.send(done.SerializeToString())

    async def run() -> None:
        async with websockets.serve(serve, "127.0.0.1", 0, subprotocols=["streamlit"]) as server:
            port = server.sockets[0].getsockname()[1]
            await asyncio.wait_for(warm._open_all(f"ws://127.0.0.1:{port}/_stcore/stream",
                                                  warm.targets(("frequency", "water-lick"))), timeout=60)

    asyncio.run(run())
    assert seen == [("frequency", ""), ("water-lick", ""), *warm.ONE_CLICK]


def test_the_warmed_query_opens_the_state_it_names():
    """The one-click state is read from the URL by the page (so the warm-up fills the cache
    entries a student's click on it needs)."""
    query = {k: v[0] for k, v in parse_qs(warm.ONE_CLICK[0][1]).items()}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.query_params.update(query)
    at.run()
    at.switch_page("pages/4_water-lick.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="lick.structure").value == query["structure"]


def test_import_preloaded_loads_in_the_server_what_the_workers_preload():
    """A call that proves cheap runs in the server process, so the libraries the engine
    imports on first use (statsmodels for the GLM and the GEE) are imported at warm-up, not
    in the middle of a student's rerun. Checked in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from ui import compute\n"
            "assert 'statsmodels.api' not in sys.modules\n"
            "compute.import_preloaded()\n"
            "missing = [m for m in compute.PRELOAD if m not in sys.modules]\n"
            "assert not missing, missing\n"
            "assert 'statsmodels.api' in compute.PRELOAD\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
