"""kftools sweep: the grid, the runs table, resuming, and a real Dask cluster (scheduler + 2 workers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from kftest import KFTOOLS, ROOT, run_cli, wait_for

import kftools
from kftools.bench.backtest import record

STRATEGY = os.path.join(ROOT, "tests", "data", "sweep_maker.py") + ":Maker"
GRID = ["--grid", "spread=0.01,0.02", "--fill-model", "touch,queue", "--no-chart"]


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("rec") / "rec.dat")
    record(path, 1_500)
    return path


@pytest.fixture(scope="module")
def local(rec, tmp_path_factory):
    """The 4-run sweep on local processes (the reference the other tests compare with)."""
    out = tmp_path_factory.mktemp("local") / "out"
    trace = str(out.parent / "trace.jsonl")  # the timeline test_pool_workers_start_warm reads
    gate = str(out.parent / "gate")
    # the spread 0.02 runs wait at the gate until a pool worker has started a run: the sweep's own process
    # (which runs jobs while the pool starts) cannot do all four before a worker starts
    env = dict(os.environ, KFTOOLS_TEST_GATE=gate, KFTOOLS_SWEEP_TRACE=trace)
    args = [*KFTOOLS, "sweep", rec, "--strategy", STRATEGY, *GRID, "--workers", "2", "-o", str(out)]
    p = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(_pids_that_ran(trace)) >= 2, "a run started in the pool's worker")
    finally:
        open(gate, "w").close()
    stdout, stderr = p.communicate(timeout=100)
    assert p.returncode == 0, stderr
    return str(out), subprocess.CompletedProcess(args, p.returncode, stdout, stderr)


def _events(trace: str) -> list[dict]:
    try:
        with open(trace) as fh:
            return [json.loads(line) for line in fh if line.endswith("\n")]
    except FileNotFoundError:
        return []


def _pids_that_ran(trace: str) -> set[int]:
    return {e["pid"] for e in _events(trace) if e["event"] == "run.start"}


def runs(out: str):
    return pq.read_table(os.path.join(out, "runs.parquet"))


def same_results(a: str, b: str) -> None:
    ta, tb = runs(a), runs(b)
    assert ta.equals(tb), (ta.to_pylist(), tb.to_pylist())
    for run in ta.column("run").to_pylist():
        for name in ("summary.json", "fills.parquet", "equity.parquet", "orders.parquet"):
            with open(os.path.join(a, "runs", run, name), "rb") as fa, open(os.path.join(b, "runs", run, name), "rb") as fb:
                assert fa.read() == fb.read(), (run, name)


def test_sweep_writes_one_row_and_one_result_folder_per_run(local, rec):
    out, r = local
    t = runs(out)
    rows = t.to_pylist()
    assert len(rows) == 4
    assert [(x["fill_model"], x["param.spread"]) for x in rows] == [
        ("touch", 0.01), ("touch", 0.02), ("queue", 0.01), ("queue", 0.02)]
    for col in ("recording", "latency_ns", "net_pnl", "max_drawdown", "fill_ratio", "sharpe", "sharpe_bar", "folder"):
        assert col in t.column_names
    for x in rows:
        assert x["error"] is None and x["recording"] == os.path.abspath(rec)
        files = set(os.listdir(os.path.join(out, x["folder"])))
        assert {"summary.json", "fills.parquet", "equity.parquet", "report.html"} <= files
    assert os.path.exists(os.path.join(out, "report.html"))
    assert "swept 4 run(s)" in r.stdout and "4 run now, 0 finished earlier, 0 failed" in r.stdout
    assert "best           net " in r.stdout


def test_pool_workers_start_warm(local):
    """A worker's first run imports nothing: the fork server imported (and drew once) what a run uses, so no
    worker pays that again (before, each worker's first run imported ~560 modules, pandas among them: +0.3 s).
    And the sweep's own process runs jobs while that server starts (before, a core idled for a second)."""
    out, _ = local
    events = _events(os.path.join(os.path.dirname(out), "trace.jsonl"))
    server = [e for e in events if e["event"] == "warm.end"]
    assert len(server) == 1, events
    sweeper = next(e["pid"] for e in events if e["event"] == "parent.start")  # runs jobs too, but started cold
    first: dict[tuple[int, str], dict] = {}
    for e in events:
        if e["event"] in ("run.start", "run.end") and e["pid"] != sweeper and (e["pid"], e["event"]) not in first:
            first[(e["pid"], e["event"])] = e
    workers = {pid for pid, _ in first}
    assert workers and server[0]["pid"] not in workers
    own = [e["t"] for e in events if e["event"] == "run.start" and e["pid"] == sweeper]
    assert own and min(own) < server[0]["t"], "the sweep's process waited for the pool's fork server"
    for pid in workers:
        start, end = first[(pid, "run.start")], first[(pid, "run.end")]
        assert start["run"] == end["run"] and end["modules"] == start["modules"], (start, end)


def test_a_run_is_the_backtest_kftools_backtest_runs(local, rec, tmp_path):
    """The sweep's run (spread 0.02, queue) has the summary of ``kftools backtest`` with the same options."""
    out, _ = local
    row = next(x for x in runs(out).to_pylist() if x["fill_model"] == "queue" and x["param.spread"] == 0.02)
    r = run_cli("backtest", rec, "--strategy", STRATEGY, "--param", "spread=0.02", "--fill-model", "queue",
                "--results", tmp_path / "res", "--no-chart", "--json")
    assert r.returncode == 0, r.stderr
    want = json.loads(r.stdout)
    with open(os.path.join(out, row["folder"], "summary.json")) as fh:
        got = json.load(fh)
    for key in ("results", "result_files"):
        want.pop(key)
    assert got == want
    assert row["net_pnl"] == want["net_pnl"] and row["fills"] == want["fills"]


@pytest.mark.parametrize("workers, sig", [("1", signal.SIGINT), ("2", signal.SIGTERM)])
def test_interrupted_sweep_resumes_with_the_runs_not_finished(rec, local, tmp_path, workers, sig):
    """Stopped while runs wait at the gate (a signal to the sweep's process only: its workers are stopped by
    it), then re-run: only the runs not finished are done, and the results are the uninterrupted ones."""
    out = str(tmp_path / "out")
    gate = str(tmp_path / "gate")
    env = dict(os.environ, KFTOOLS_TEST_GATE=gate)
    p = subprocess.Popen([*KFTOOLS, "sweep", rec, "--strategy", STRATEGY, *GRID, "--workers", workers, "-o", out],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = os.path.join(out, "_kftools_sweep.json")

    def finished() -> int:
        try:
            with open(manifest) as fh:
                return len(json.load(fh)["runs"])
        except (OSError, ValueError):
            return 0

    wait_for(lambda: finished() >= 1, "the first run in the manifest")  # the spread 0.02 runs wait at the gate
    p.send_signal(sig)
    _, err = p.communicate(timeout=100)  # well before the gate's own 600 s guard: nobody waited for the gate
    assert p.returncode == 130, err
    assert "Traceback" not in err
    done = finished()
    assert 1 <= done <= 2  # the spread 0.01 runs at most
    assert not os.path.exists(os.path.join(out, "runs.parquet"))
    r = run_cli("sweep", rec, "--strategy", STRATEGY, *GRID, "--workers", "2", "-o", out)
    assert r.returncode == 0, r.stderr
    assert f"{4 - done} run now, {done} finished earlier, 0 failed" in r.stdout
    same_results(local[0], out)
    again = run_cli("sweep", rec, "--strategy", STRATEGY, *GRID, "-o", out)
    assert "0 run now, 4 finished earlier" in again.stdout


def test_a_different_sweep_in_the_same_folder_is_refused(rec, local):
    out, _ = local
    before = os.path.getmtime(os.path.join(out, "runs.parquet"))
    r = run_cli("sweep", rec, "--strategy", STRATEGY, "--grid", "spread=0.05", "--fill-model", "touch,queue", "--no-chart",
                "-o", out)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "holds a different sweep" in r.stderr and "grid" in r.stderr
    assert os.path.getmtime(os.path.join(out, "runs.parquet")) == before


@pytest.mark.parametrize("args, message", [
    (["--grid", "spread"], "expected NAME=V1,V2"),
    (["--grid", "spread=0.01,0.01"], "given twice"),
    (["--fill-model", "magic"], "choose from"),
    (["--latency", "fast"], "give a duration"),
])
def test_bad_grid_is_one_line_and_writes_nothing(rec, tmp_path, args, message):
    out = tmp_path / "out"
    r = run_cli("sweep", rec, "--strategy", STRATEGY, *args, "-o", out)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_a_parameter_the_strategy_does_not_take_stops_the_sweep_before_it_starts(rec, tmp_path):
    out = tmp_path / "out"
    r = run_cli("sweep", rec, "--strategy", STRATEGY, "--grid", "colour=red", "-o", out)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "does not take these parameters" in r.stderr and "colour" in r.stderr
    assert not out.exists()


def test_a_run_whose_strategy_raises_fails_alone(rec, tmp_path):
    res = kftools.sweep(rec, STRATEGY, str(tmp_path / "out"), grid={"spread": [0.01, -1.0]}, workers=1, chart=False)
    assert list(res.failed.values()) == [res.runs.column("error")[1].as_py()]
    assert "spread must be positive, not -1.0" in res.runs.column("error")[1].as_py()
    assert res.runs.column("error")[0].as_py() is None and res.ran == 2
    r = run_cli("sweep", rec, "--strategy", STRATEGY, "--grid", "spread=0.01,-1", "--no-chart", "-o", res.out)
    assert r.returncode == 1 and "1 run(s) failed (re-run to retry them)" in r.stderr
    assert "1 run now, 1 finished earlier, 1 failed" in r.stdout  # the failed run is tried again


# -- a real Dask cluster on 127.0.0.1 --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("distributed")
    from distributed import Client

    d = tmp_path_factory.mktemp("dask")
    sched_file = str(d / "scheduler.json")
    gate = str(d / "gate")
    dask = [sys.executable, "-m", "dask"]
    env = dict(os.environ, KFTOOLS_TEST_GATE=gate, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(_free_port()),
                               "--no-dashboard", "--scheduler-file", sched_file], cwd=str(d), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_for(lambda: os.path.exists(sched_file) and os.path.getsize(sched_file) > 0, "the scheduler file")
        workers = [subprocess.Popen([*dask, "worker", "--scheduler-file", sched_file, "--nthreads", "1",
                                     "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"], cwd=str(d), env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        procs += workers
        with open(sched_file) as fh:
            address = json.load(fh)["address"]
        client = Client(address, timeout="120s")
        client.wait_for_workers(2, timeout=100)  # a generous guard on a loaded machine
        yield {"address": address, "client": client, "workers": workers, "gate": gate}
        client.shutdown()  # the scheduler stops the workers left, then itself
    finally:
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_a_sweep_on_dask_equals_the_local_one(cluster, rec, local, tmp_path):
    open(cluster["gate"], "w").close()  # no run waits here
    try:
        out = str(tmp_path / "out")
        r = run_cli("sweep", rec, "--strategy", STRATEGY, *GRID, "--scheduler", cluster["address"], "-o", out)
        assert r.returncode == 0, r.stderr
        same_results(local[0], out)
    finally:
        os.unlink(cluster["gate"])


def test_a_worker_killed_mid_sweep_costs_only_its_run(cluster, rec, local, tmp_path):
    """After the first result arrives, kill -9 a worker that holds a run (held at the gate): same results."""
    client = cluster["client"]
    pids = client.run(os.getpid)  # worker address -> pid
    killed: list[tuple[str, list]] = []

    def on_progress(p):
        if p.done >= 1 and not killed:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            victim = next(iter(busy))
            os.kill(pids[victim], signal.SIGKILL)
            killed.append((victim, list(busy[victim])))
            open(cluster["gate"], "w").close()

    res = kftools.sweep(rec, STRATEGY, str(tmp_path / "out"), grid={"spread": [0.01, 0.02]},
                        fill_models=["touch", "queue"], scheduler=cluster["address"], chart=False,
                        on_progress=on_progress)
    assert killed and killed[0][1], "a worker holding a run was killed"
    assert not res.failed and res.ran == 4
    same_results(local[0], res.out)


def test_a_grid_file_is_the_same_sweep_as_the_options(rec, local, tmp_path):
    grid = tmp_path / "sweep.toml"
    grid.write_text('fill_model = ["touch", "queue"]\n[grid]\nspread = [0.01, 0.02]\n')
    r = run_cli("sweep", rec, "--strategy", STRATEGY, "--grid-file", grid, "--no-chart", "-o", local[0])
    assert r.returncode == 0, r.stderr
    assert "0 run now, 4 finished earlier, 0 failed" in r.stdout  # the manifest says: the same sweep, all done


def test_a_recording_in_unknown_storage_is_refused_in_one_line(tmp_path):
    """s3:// and gs:// datasets are recordings (tests/test_sweep_s3.py); another scheme is no place kftools reads."""
    r = run_cli("sweep", "ftp://bucket/kf", "--strategy", STRATEGY, "-o", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "ftp://bucket/kf: unknown location" in r.stderr
    assert not (tmp_path / "out").exists()
