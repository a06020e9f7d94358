"""A sweep: runs every combination, in local processes or on a Dask cluster, into one results folder.

Layout of ``OUT``::

    _kftools_sweep.json   the manifest: what the sweep is (strategy digest, grid, options) and the runs done
    runs/<run id>/        each run's own result folder (orders/fills/equity Parquet, summary.json, chart.png,
                          report.html)
    runs.parquet          one row per run: its parameters, fill model, latency, recording and numbers
    report.html           the sweep's report (kftools.backtest.report)
    plotly.min.js         the runs' reports load plotly.js from here (the sweep's own report inlines it)

A run's folder appears whole (written beside, then renamed) and is recorded in the manifest after it, so an
interrupted sweep re-run with the same folder does only the runs the manifest does not list as finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OutputError, UsageError
from .grid import RunSpec, expand, parse_grid, read_grid_file
from .runner import Job, RunResult
from .trace import mark

MANIFEST = "_kftools_sweep.json"
MANIFEST_FORMAT = 1
RUNS_DIR = "runs"
PLOTLY_JS = "plotly.min.js"
#: the summary's numbers that become runs.parquet columns (in this order)
NUMBERS = ("net_pnl", "realized_pnl", "unrealized_pnl", "fees", "max_drawdown", "orders", "fills", "maker_fills",
           "taker_fills", "fill_ratio", "traded_volume", "turnover", "frames", "start_time_ns", "end_time_ns")
#: what "best run so far" ranks by
BEST_BY = "net_pnl"


@dataclass
class Progress:
    """What the sweep reports after each run (``on_progress``): counts and the best run so far."""

    done: int
    total: int
    skipped: int  # finished in an earlier, interrupted sweep
    failed: int
    last: RunSpec | None = None
    best: dict | None = None  # the runs.parquet row of the best run so far (by net P&L)


@dataclass
class SweepResult:
    """A finished sweep: its folder, the runs table, and the runs that failed (id -> error)."""

    out: str
    runs: pa.Table
    ran: int  # runs tried now (the failed ones included)
    skipped: int
    failed: dict[str, str] = field(default_factory=dict)
    report: str | None = None


def sweep(
    recordings: str | Iterable[str],
    strategy: str,
    out: str,
    *,
    grid: dict[str, list[Any]] | list[str] | None = None,
    grid_file: str | None = None,
    fill_models: Iterable[str] | None = None,
    latencies: Iterable[str | int] | None = None,
    response_latency: str | int = 0,
    fees: str | None = None,
    cash: float = 0.0,
    cap_volume: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    chart: bool = True,
    force: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> SweepResult:
    """Backtest ``strategy`` (``path.py[:Class]``) over every combination; write ``out`` (see the module doc).

    ``grid``: ``{"name": [values]}`` (or ``["name=v1,v2", ...]``), passed to the strategy class as keyword
    arguments; ``fill_models`` and ``latencies`` sweep the simulated exchange. Runs go to ``workers`` local
    processes (default one per core), or to the Dask cluster at ``scheduler`` (``tcp://host:8786``).
    ``chart``: each run also draws chart.png (its report.html is always written).
    """
    from ..backtest.options import parse_latency

    mark("parent.start")
    recs = _recordings([recordings] if isinstance(recordings, str | os.PathLike) else list(recordings))
    g = parse_grid(grid) if isinstance(grid, list) else dict(grid or {})
    models = list(fill_models or ())
    lats = list(latencies or ())
    if grid_file is not None:
        doc = read_grid_file(grid_file)
        for k, v in doc["grid"].items():
            if k in g:
                raise UsageError(f"grid {k}: given both in {grid_file} and on the command line")
            g[k] = v
        models = models or doc.get("fill_model", [])
        lats = lats or doc.get("latency", [])
    runs = expand(recs, g, models or ["touch"], lats or [0])
    if not scheduler:
        from .local import pool_size, start_server

        if pool_size(workers, len(runs)) > 1:  # the pool's fork server starts while this process prepares
            start_server()
    path, _, cls_name = strategy.rpartition(":") if ":" in os.path.basename(strategy) else (strategy, "", "")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such strategy file")
    with open(path) as fh:
        source = fh.read()
    from .runner import check_strategy

    cls_name = check_strategy(path, cls_name, runs[0].param_dict if runs else {})
    resp_ns = parse_latency(response_latency, "--response-latency")
    from ..backtest.options import parse_fees

    parse_fees(fees)
    from .datasets import dataset_key, is_dataset

    keys = {r: dataset_key(r) for r in recs if is_dataset(r)}  # what each dataset is now (its manifest)
    jobs = [Job(r, source, os.path.basename(path), cls_name, resp_ns, fees, float(cash),
                cap_volume, plotlyjs=f"../../{PLOTLY_JS}", chart=chart, dataset_key=keys.get(r.recording))
            for r in runs]
    spec_doc = {
        "strategy": {"file": os.path.basename(path), "class": cls_name,
                     "sha256": hashlib.sha256(source.encode()).hexdigest()},
        "recordings": recs, **({"datasets": keys} if keys else {}), "grid": g, "fill_models": sorted({r.fill_model for r in runs}),
        "latencies_ns": sorted({r.latency_ns for r in runs}),
        "response_latency_ns": resp_ns, "fees": fees, "cash": float(cash), "cap_volume": cap_volume,
    }
    out = os.fspath(out)
    manifest = _open_folder(out, spec_doc, force)
    done: dict[str, str] = dict(manifest["runs"])
    todo = [j for j in jobs if j.spec.run_id not in done or not os.path.isdir(_run_dir(out, j.spec.run_id))]
    skipped = len(jobs) - len(todo)
    _write_plotly_js(out)
    failed: dict[str, str] = {}
    rows_by_id: dict[str, dict] = {}
    for j in jobs:
        if j.spec.run_id not in {t.spec.run_id for t in todo}:
            rows_by_id[j.spec.run_id] = _row(out, j.spec)
    best: dict | None = _best(rows_by_id.values())
    specs = {j.spec.run_id: j.spec for j in jobs}

    def finished(res: RunResult) -> None:
        nonlocal best
        spec = specs[res.run_id]
        mark("parent.finished", run=res.run_id)
        if res.error is not None:
            failed[res.run_id] = res.error
        else:
            _store_run(out, res)
            mark("parent.stored", run=res.run_id)
            done[res.run_id] = "done"
            manifest["runs"] = done
            _write_manifest(out, manifest)
            mark("parent.manifest", run=res.run_id)
            rows_by_id[res.run_id] = _row(out, spec)
            best = _best(rows_by_id.values())
            mark("parent.row", run=res.run_id)
        if on_progress is not None:
            on_progress(Progress(len(rows_by_id) - skipped + len(failed), len(todo), skipped, len(failed), spec, best))

    if on_progress is not None:
        on_progress(Progress(0, len(todo), skipped, 0, None, best))
    mark("parent.runs_start", runs=len(todo))
    if todo:
        if scheduler:
            from .cluster import run_on_dask

            run_on_dask(scheduler, todo, finished)
        else:
            from .local import run_local

            run_local(todo, finished, workers)
    mark("parent.runs_end")
    rows = [rows_by_id[r.run_id] if r.run_id in rows_by_id else _failed_row(r, failed[r.run_id]) for r in runs]
    table = runs_table(rows, list(g))
    _atomic_parquet(table, os.path.join(out, "runs.parquet"))
    mark("parent.parquet")
    from ..backtest.report import write_sweep_report

    report = write_sweep_report(out, table, list(g), title=f"Sweep: {cls_name} ({os.path.basename(path)})")
    mark("parent.report")
    return SweepResult(out, table, len(todo), skipped, failed, report)


def _recordings(paths: list) -> list[str]:
    """Each recording as an absolute path (a folder: the journals in it), or a dataset's URI (``s3://...``: each
    worker imports it once, see :mod:`.datasets`)."""
    from ..errors import NotAJournal
    from ..journal.resolve import journal_paths
    from .datasets import is_dataset

    out: list[str] = []
    for p in map(os.fspath, paths):
        if is_dataset(p):
            out.append(p.rstrip("/"))
            continue
        for j in journal_paths([p]):
            if not os.path.exists(j):
                raise NotAJournal(f"{j}: no such recording")
            out.append(os.path.abspath(j))
    if not out:
        raise UsageError("no recording given")
    for i, p in enumerate(out):
        if p in out[:i]:
            raise UsageError(f"{p}: given twice")
    return out


# -- the folder ------------------------------------------------------------------------------------------
def _run_dir(out: str, run_id: str) -> str:
    return os.path.join(out, RUNS_DIR, run_id)


def _open_folder(out: str, spec: dict, force: bool) -> dict:
    """The manifest to continue from (a new one for a new folder); raises when ``out`` is not ours to write."""
    if os.path.islink(out):
        raise OutputError(f"{out}: is a symbolic link (results are never written through one)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError(f"{out}: exists and is not a folder")
    mpath = os.path.join(out, MANIFEST)
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(mpath):
            raise OutputError(f"{out}: not empty and not a kftools sweep folder (no {MANIFEST}); not writing there")
        try:
            with open(mpath) as fh:
                manifest = json.load(fh)
        except (OSError, ValueError, RecursionError) as e:
            raise OutputError(f"{mpath}: unreadable sweep manifest: {e}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise OutputError(f"{mpath}: not a kftools sweep manifest of format {MANIFEST_FORMAT}")
        if force:
            for name in (RUNS_DIR, "runs.parquet", "report.html", PLOTLY_JS, MANIFEST):
                p = os.path.join(out, name)
                if os.path.isdir(p):
                    shutil.rmtree(p)
                elif os.path.exists(p):
                    os.unlink(p)
        elif json.loads(json.dumps(manifest.get("sweep"))) != json.loads(json.dumps(spec)):
            diff = _diff(manifest.get("sweep") or {}, spec)
            raise UsageError(f"{out}: holds a different sweep ({diff}); use another folder, or --force to start over")
        else:
            return manifest
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise OutputError(f"{out}: folder {parent} does not exist")
    os.makedirs(os.path.join(out, RUNS_DIR), exist_ok=True)
    manifest = {"format": MANIFEST_FORMAT, "sweep": spec, "runs": {}}
    _write_manifest(out, manifest)
    return manifest


def _diff(old: dict, new: dict) -> str:
    for k in sorted(set(old) | set(new)):
        if json.dumps(old.get(k), sort_keys=True) != json.dumps(new.get(k), sort_keys=True):
            return f"{k}: {json.dumps(old.get(k), sort_keys=True)} there, {json.dumps(new.get(k), sort_keys=True)} now"
    return "a different manifest"


def _write_manifest(out: str, manifest: dict) -> None:
    tmp = os.path.join(out, f".{MANIFEST}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, os.path.join(out, MANIFEST))


def _store_run(out: str, res: RunResult) -> None:
    """Write a run's folder whole: beside it first, then renamed into place (replacing a partial one)."""
    final = _run_dir(out, res.run_id)
    tmp = os.path.join(out, RUNS_DIR, f".{res.run_id}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    for name, data in res.files.items():
        with open(os.path.join(tmp, os.path.basename(name)), "wb") as fh:
            fh.write(data)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)


def _write_plotly_js(out: str) -> None:
    path = os.path.join(out, PLOTLY_JS)
    if not os.path.exists(path):
        from plotly.offline import get_plotlyjs

        tmp = path + f".{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(get_plotlyjs())
        os.replace(tmp, path)


def _atomic_parquet(table: pa.Table, path: str) -> None:
    tmp = path + f".{os.getpid()}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


# -- the runs table --------------------------------------------------------------------------------------
def _row(out: str, spec: RunSpec) -> dict:
    from ..backtest.report import run_statistics

    folder = _run_dir(out, spec.run_id)
    with open(os.path.join(folder, "summary.json")) as fh:
        summary = json.load(fh)
    row: dict[str, Any] = {"run": spec.run_id, "recording": spec.recording, "fill_model": spec.fill_model,
                           "latency_ns": spec.latency_ns}
    row.update({f"param.{k}": v for k, v in spec.params})
    row.update({k: summary.get(k) for k in NUMBERS})
    st = run_statistics(folder)
    row.update({"maker_share": st["maker_share"], "volatility": st["volatility"], "sharpe": st["sharpe"],
                "sharpe_bar": st["bar"], "folder": os.path.join(RUNS_DIR, spec.run_id), "error": None})
    return row


def _failed_row(spec: RunSpec, error: str) -> dict:
    row: dict[str, Any] = {"run": spec.run_id, "recording": spec.recording, "fill_model": spec.fill_model,
                           "latency_ns": spec.latency_ns}
    row.update({f"param.{k}": v for k, v in spec.params})
    row["error"] = error
    return row


def _best(rows: Iterable[dict]) -> dict | None:
    ok = [r for r in rows if r.get(BEST_BY) is not None]
    return max(ok, key=lambda r: (r[BEST_BY], r["run"])) if ok else None


_TYPES = {"run": pa.string(), "recording": pa.string(), "fill_model": pa.string(), "latency_ns": pa.int64(),
          "orders": pa.int64(), "fills": pa.int64(), "maker_fills": pa.int64(), "taker_fills": pa.int64(),
          "frames": pa.int64(), "start_time_ns": pa.int64(), "end_time_ns": pa.int64(), "sharpe_bar": pa.string(),
          "folder": pa.string(), "error": pa.string()}


def runs_table(rows: list[dict], params: list[str]) -> pa.Table:
    """runs.parquet: one row per run, in the sweep's order."""
    cols = ["run", "recording", "fill_model", "latency_ns", *(f"param.{p}" for p in params), *NUMBERS,
            "maker_share", "volatility", "sharpe", "sharpe_bar", "folder", "error"]
    data: dict[str, pa.Array] = {}
    for c in cols:
        vals = [r.get(c) for r in rows]
        if c in _TYPES:
            data[c] = pa.array(vals, _TYPES[c])
        elif c.startswith("param."):
            data[c] = pa.array(vals)
        else:
            data[c] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
    return pa.table(data)
