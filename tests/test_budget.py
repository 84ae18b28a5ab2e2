"""Per-request budgets: group limits with teaching messages, time and memory caps (issue 15)."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from mmteach import budget


def test_skip_reason_names_the_size_and_the_limit() -> None:
    assert budget.skip_reason("per_group", 300, 900, label="The per-mouse fits") is None
    msg = budget.skip_reason("per_group", 10_000, 30_000, label="The per-mouse fits", unit="mice")
    assert msg is not None and "10,000 mice" in msg and "300" in msg and "left out" in msg
    msg = budget.skip_reason("mixed", 10, 600_000, label="The mixed model", plural=False)
    assert msg is not None and "600,000 rows" in msg and " is left out" in msg


def _spin(seconds: float) -> float:
    t0 = time.perf_counter()
    with budget.time_limit(seconds):
        while True:
            time.sleep(0.01)
    return time.perf_counter() - t0  # unreachable


def _worker_time() -> str:
    try:
        _spin(0.3)
    except budget.BudgetExceeded as err:
        return str(err)
    return "not stopped"


def _worker_memory() -> str:
    budget.limit_memory(400)
    try:
        budget.call(lambda: bytearray(800 * 1024 * 1024), seconds=10)
    except budget.BudgetExceeded as err:
        return str(err)
    return "not stopped"


@pytest.mark.parametrize(("target", "word"), [(_worker_time, "longer"), (_worker_memory, "memory")])
def test_worker_budget_stops_the_request(target, word: str) -> None:
    with mp.get_context("spawn").Pool(1) as pool:
        message = pool.apply(target)
    assert word in message and "stopped" in message


def test_time_limit_is_a_no_op_off_the_main_thread() -> None:
    import threading

    seen: list[bool] = []
    t = threading.Thread(target=lambda: seen.append(budget.time_limit(0.01).__enter__()))
    t.start()
    t.join()
    assert seen == [False]
