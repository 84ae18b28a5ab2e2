"""ui.compute: the shared cache is bounded, computes each key once, and the pool gives the engine's answers."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pandas as pd
import pytest

from mmteach.datasets import load_dataset
from mmteach.errors import ModelError
from mmteach.lm import fit_lm
from mmteach.lme import fit_lme
from mmteach.subsample import cell_counts, subsample_per_group
from ui import compute, pool_worker


def test_cache_bounded_by_entries_and_bytes():
    cache = compute.BoundedCache(max_entries=3, max_mb=1)
    for i in range(5):
        cache.get_or_compute(i, lambda i=i: (i, 10))
    assert len(cache) == 3 and cache.stats()["evicted"] == 2
    assert cache.get_or_compute(4, lambda: pytest.fail("4 is cached")) == 4
    big = compute.BoundedCache(max_entries=100, max_mb=1)
    for i in range(10):
        big.get_or_compute(i, lambda i=i: (i, 300_000))  # 0.3 MB each
    assert big.bytes <= 2**20 and len(big) == 3


def test_identical_concurrent_requests_computed_once():
    cache = compute.BoundedCache(max_entries=10, max_mb=1)
    runs = []

    def slow():
        runs.append(1)
        # finish only once the five other threads are waiting on this computation (a fixed
        # sleep let a slow CI machine start some threads after it ended: cache hits, not shares)
        deadline = time.monotonic() + 20
        while cache.stats()["shared"] < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        return "fit", 1

    out = []
    threads = [threading.Thread(target=lambda: out.append(cache.get_or_compute("k", slow))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["fit"] * 6 and len(runs) == 1
    assert cache.stats()["shared"] == 5


def test_failed_computation_is_not_cached():
    cache = compute.BoundedCache(max_entries=10, max_mb=1)
    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert cache.get_or_compute("k", lambda: ("ok", 1)) == "ok"


def test_data_token_follows_the_values():
    d = load_dataset("ca_frequency")
    same = d.copy()
    assert compute.data_token(d) == compute.data_token(same)
    changed = d.copy()
    changed.loc[changed.index[0], "res"] += 1
    assert compute.data_token(changed) != compute.data_token(d)
    assert compute.data_token(d.iloc[:-1]) != compute.data_token(d)



def test_data_token_tells_apart_what_a_cached_result_depends_on():
    base = pd.DataFrame({"mouse": ["1", "2", None], "x": [1.0, np.nan, 3.0], "n": [1, 2, 3]})
    variants = {
        "text vs number": base.assign(mouse=[1, 2, None]),
        "missing vs 'None'": base.assign(mouse=["1", "2", "None"]),
        "a value": base.assign(x=[1.0, np.nan, 3.5]),
        "NaN vs 0": base.assign(x=[1.0, 0.0, 3.0]),
        "int vs float": base.assign(n=[1.0, 2.0, 3.0]),
        "column order": base[["x", "mouse", "n"]],
        "column name": base.rename(columns={"x": "y"}),
        "row order": base.iloc[[1, 0, 2]],
        "index labels": base.set_axis([5, 6, 7]),
        "index name": base.rename_axis("row"),
        "category order": base.assign(mouse=pd.Categorical(["1", "2", None], categories=["2", "1"])),
        "text split": base.assign(mouse=["1\x00", "2", None]),
    }
    plain_cat = base.assign(mouse=pd.Categorical(["1", "2", None], categories=["1", "2"]))
    tokens = {name: compute.data_token(df) for name, df in {**variants, "base": base, "cat": plain_cat}.items()}
    assert len(set(tokens.values())) == len(tokens), tokens  # every variant has its own token
    assert compute.data_token(base.copy()) == tokens["base"]  # equal values: equal token
    assert compute.data_token(plain_cat.copy()) == tokens["cat"]


def test_pool_and_prefetch_give_the_engine_results():
    d = load_dataset("ca_frequency").iloc[::3]  # data no other test has cached
    formula = "res ~ treatment_idx + (1 | midx)"
    direct = fit_lme(d, formula, factors=["treatment_idx"])
    compute.prefetch(fit_lme, d, formula, factors=["treatment_idx"])
    pooled = compute.call(fit_lme, d, formula, factors=("treatment_idx",))  # list or tuple: one key
    pd.testing.assert_frame_equal(pooled.tidy(), direct.tidy())
    assert compute.call(fit_lme, d, formula, factors=["treatment_idx"]) is pooled  # shared, not refitted
    # a teaching error keeps its class and message, and is cached as well
    one_mouse = d[d["midx"] == d["midx"].iloc[0]]
    for _ in range(2):
        with pytest.raises(ModelError) as err:
            compute.call(fit_lme, one_mouse, formula, factors=["treatment_idx"])
    assert "mouse" in str(err.value).lower() or "group" in str(err.value).lower()
    lm = compute.call(fit_lm, d, "res ~ treatment_idx", factors=["treatment_idx"])
    pd.testing.assert_frame_equal(lm.tidy(), fit_lm(d, "res ~ treatment_idx", factors=["treatment_idx"]).tidy())


def test_pool_workers_run_pandas_text_and_group_by_work_within_their_memory_limit():
    # a fresh worker's first Arrow-backed text operation maps address space; it used to come
    # after the worker's memory limit and every cell count failed with "needed more memory"
    d = load_dataset("ca_frequency")
    ok, value = pickle.loads(compute._pool(compute.WORKERS or 1).submit(
        pool_worker.run_packed, cell_counts, d, ("midx", "treatment_idx"), {}).result()[0])
    assert ok, value
    with pd.option_context("mode.string_storage", "python"):  # as in every worker
        pd.testing.assert_frame_equal(value, cell_counts(d, "midx", "treatment_idx"))
    # quick data handling stays in the server and is cached like the fits
    sub = compute.here(subsample_per_group, d, "midx", {1: 30, 2: 30, 3: 30, 4: 30}, seed=0)
    assert sub["midx"].value_counts().to_dict() == {1: 30, 2: 30, 3: 30, 4: 30}
    again = compute.here(subsample_per_group, d, "midx", {1: 30, 2: 30, 3: 30, 4: 30}, seed=0)
    pd.testing.assert_frame_equal(again, sub)


def test_derived_cached_on_the_results_it_comes_from():
    d = load_dataset("ca_frequency").iloc[1::4]
    calls = []

    def table(fits, label):
        calls.append(label)
        return pd.DataFrame({"label": [label], "estimate": [fits["LM"].tidy()["estimate"].iloc[1]]})

    lm = compute.call(fit_lm, d, "res ~ treatment_idx", factors=["treatment_idx"])
    first = compute.derived(table, {"LM": lm}, "48h")
    again = compute.derived(table, {"LM": lm}, "48h")
    pd.testing.assert_frame_equal(first, again)
    assert calls == ["48h"]
    compute.derived(table, {"LM": lm}, "72h")
    assert calls == ["48h", "72h"]
    # a fit made outside the cache is not known: computed every time, never stale
    own = fit_lm(d, "res ~ treatment_idx", factors=["treatment_idx"])
    compute.derived(table, {"LM": own}, "48h")
    compute.derived(table, {"LM": own}, "48h")
    assert calls == ["48h", "72h", "48h", "48h"]


def test_background_run_relays_progress_and_gives_the_engine_result():
    from mmteach.compare import compare_models

    d = load_dataset("water_lick")
    args = (d, "lick ~ dff + (1 | mouseID)", "lick ~ 1 + (1 | mouseID)")
    seen = []
    got = compute.background(compare_models, *args, family="binomial", bootstrap=60, seed=3,
                             progress=lambda done, total: seen.append((done, total)), poll_s=0.02)
    ref = compare_models(*args, family="binomial", bootstrap=60, seed=3)
    assert got.bootstrap_p_value == ref.bootstrap_p_value and got.chisq == pytest.approx(ref.chisq)
    assert seen and seen[-1][1] == 60 and all(0 <= d <= t for d, t in seen)


class _Unpicklable:
    def __init__(self, n: int) -> None:
        self.n = n
        self.hook = lambda: n  # a lambda attribute: pickle refuses the object


def _unpicklable_result(data, k):
    return _Unpicklable(len(data) + k)


def test_results_that_cannot_be_pickled_are_computed_in_place_and_cached():
    d = load_dataset("ca_frequency").iloc[:50]
    first = compute.call(_unpicklable_result, d, 1)
    assert first.n == 51
    assert compute.call(_unpicklable_result, d, 1) is first


def test_pool_workers_run_below_the_server_process():
    # the server process draws every student's page: under load it comes before the fits
    import os

    worker = compute._pool(compute.WORKERS or 1).submit(os.nice, 0).result()
    assert worker == min(19, os.nice(0) + pool_worker.WORKER_NICE)


def _text_as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """The same table with its text (index included) as plain Python objects, whatever the storage."""
    out = frame.reset_index()
    out = out.astype({c: object for c in out.columns if out[c].dtype == "str"})
    out.columns = pd.Index(list(out.columns), dtype=object)
    return out


def test_python_string_storage_gives_the_same_results_and_reaches_the_workers():
    """use_python_strings (the server and every pool worker) only changes how text is stored:
    every engine result on text columns is the same as with pandas' default Arrow storage."""
    from mmteach.glmm import fit_glmm
    from mmteach.marginal import fit_gee

    out = {}
    for storage in ("pyarrow", "python"):
        with pd.option_context("mode.string_storage", storage):
            d = load_dataset("water_lick")
            d["mouse"] = "m" + d["mouseID"].astype(str)  # a text grouping column, as uploads have
            assert d["mouse"].array.dtype.storage == storage  # text kept as asked
            sub = subsample_per_group(d, "mouse", {m: 25 for m in d["mouse"].unique()}, seed=3)
            glmm = fit_glmm(sub, "lick ~ dff + (1 | mouse)", family="binomial")
            out[storage] = (sub, glmm.tidy(), glmm.ranef(), glmm.variance_components(),
                            fit_gee(sub, "lick ~ dff", "mouse", family="binomial").tidy(),
                            cell_counts(sub, "mouse", "lick"))
    for arrow, python in zip(out["pyarrow"], out["python"], strict=True):
        pd.testing.assert_frame_equal(_text_as_objects(arrow), _text_as_objects(python), check_exact=True)
    assert compute._pool(compute.WORKERS or 1).submit(pd.get_option, "mode.string_storage").result() == "python"


def test_pool_workers_start_without_running_the_app(tmp_path):
    """A worker started during a rerun re-imports the parent's main script, app.py, as
    "__mp_main__" (multiprocessing's spawn preparation): there app.py must define its
    functions but not route (no st.navigation, no Streamlit call), and the worker, having
    run a fit, holds neither Streamlit nor the app's helpers (ui/pool_worker.py)."""
    import ast
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "worker_probe.py").write_text(
        "import sys\n\n\ndef main_script_names():\n"
        "    module = sys.modules.get('__mp_main__')\n"
        "    return (getattr(module, '__file__', None), sorted(vars(module)) if module else [],\n"
        "            sorted(m for m in sys.modules if m == 'streamlit' or m.startswith(('streamlit.', 'ui.'))))\n")
    script = (
        "import sys, types\n"
        f"sys.path[:0] = [{str(ROOT)!r}, {str(tmp_path)!r}]\n"
        "main = types.ModuleType('__main__')  # as Streamlit's script runner sets it during a rerun\n"
        f"main.__file__ = {str(ROOT / 'app.py')!r}\n"
        "sys.modules['__main__'] = main\n"
        "import worker_probe\n"
        "from ui import compute, pool_worker\n"
        "from mmteach.lm import fit_lm\n"
        "from mmteach.datasets import load_dataset\n"
        "pool = compute._pool(1)\n"
        "pool.submit(pool_worker.run_packed, fit_lm, load_dataset('ca_frequency'), ('res ~ 1',), {}).result()\n"
        "print(pool.submit(worker_probe.main_script_names).result())\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    path, names, modules = ast.literal_eval(run.stdout.strip().splitlines()[-1])
    assert path == str(ROOT / "app.py")  # the worker did import the app's script ...
    assert "main" in names and "PAGES" in names
    assert "page" not in names and "home" not in names  # ... but did not route
    assert modules == ["ui.pool_worker"]  # no Streamlit, none of the Streamlit helpers
