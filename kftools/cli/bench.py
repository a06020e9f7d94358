"""``kftools bench ...``: the benchmarks (never part of ``make test``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .app import bench_app, command
from .common import JsonOpt
from .exits import warn


@command(bench_app, name="text")
def bench_text_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the journal cat prints.")] = 1_000_000,
    follow: Annotated[int, typer.Option("--follow", help="Also follow a C++ writer of N frames with cat -f (0: no).")] = 0,
    rate: Annotated[float, typer.Option("--rate", help="The followed writer's frames per second.")] = 1e6,
) -> None:
    """cat -F text|jsonl|csv lines/s to /dev/null against pyarrow's write_csv of the same rows."""
    from ..bench import report
    from ..bench.text import run

    report(run(frames=frames, follow_frames=follow, follow_rate=rate), json_out)


@command(bench_app, name="export")
def bench_export_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the exported journal.")] = 10_000_000,
    compression: Annotated[str, typer.Option("--compression", help="zstd, snappy or none.")] = "zstd",
    baseline: Annotated[int, typer.Option("--baseline-frames", help="Frames for the struct.unpack baseline.")] = 300_000,
) -> None:
    """Export throughput and peak RSS against pyarrow writing the same table from memory."""
    from ..bench import report
    from ..bench.export import run

    report(run(frames=frames, compression=compression, baseline_frames=baseline), json_out)


@command(bench_app, name="sweep")
def bench_sweep_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the (bursty, simulated) recording.")] = 100_000,
    dask: Annotated[bool, typer.Option("--dask/--no-dask", help="Also measure the overhead per run on a local Dask cluster.")] = True,
) -> None:
    """Sweep speed: 16 runs one after another, on 2 local processes, and on a one-worker Dask cluster."""
    from ..bench import report
    from ..bench.sweep import run

    report(run(frames=frames, dask=dask), json_out)



@command(bench_app, name="replay")
def bench_replay_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the recording (at --rate frames/s).")] = 200_000,
    rate: Annotated[float, typer.Option("--rate", help="Frames per second of the recording.")] = 100_000.0,
) -> None:
    """Replay lateness (p50/p99/max at speeds 1 and 10) on a uniform and a bursty recording, and --max throughput."""
    from ..bench import report
    from ..bench.replay import run

    report(run(frames=frames, rate=rate), json_out)


@command(bench_app, name="backtest")
def bench_backtest_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the (bursty, simulated) recording.")] = 1_000_000,
    repeat: Annotated[int, typer.Option("--repeat", help="Runs of each case (the median is reported).")] = 3,
    gateway_frames: Annotated[int, typer.Option(
        "--gateway-frames", help="Frames for the out-of-process (--order-journal, lockstep) cases; 0 skips them.")] = 20_000,
    chart: Annotated[Path | None, typer.Option(
        "--chart", help="Also write the example strategy's chart (PNG) from the bursty recording here.")] = None,
) -> None:
    """Backtest frames/s in --max mode: do-nothing and example strategies beside replay --max, same run; the
    example strategy out of process (Python, C++) in lockstep."""
    from ..bench import report
    from ..bench.backtest import run

    report(run(frames=frames, repeat=repeat, gateway_frames=gateway_frames,
               chart=None if chart is None else str(chart)), json_out)


@command(bench_app, name="latency")
def bench_latency_cmd(
    json_out: JsonOpt = False,
    samples: Annotated[int, typer.Option("--samples", help="Frames timed per transport.")] = 100_000,
    cpp: Annotated[bool, typer.Option("--cpp", help="Also C++ writer to Python and C++ followers.")] = False,
    contended: Annotated[bool, typer.Option(
        "--contended", help="Also followers on a shared host: busy and park followers, Pipe and iceoryx2, idle and "
                            "with a third process spinning (shared.* figures).")] = False,
) -> None:
    """Cross-process latency: Python writer to a busy-polling Python follower (unnamed and --name), against multiprocessing.Pipe."""
    from ..bench import report
    from ..bench.latency import run

    results = run(samples=samples)
    if cpp:
        from ..bench.cpp import run as run_cpp

        results.update(run_cpp())
    if contended:
        from ..bench.shared_host import run as run_shared

        results.update(run_shared(samples=min(samples, 20_000)))
    report(results, json_out)


@command(bench_app, name="archive")
def bench_archive_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames of the simulated feed.")] = 1_000_000,
    level: Annotated[int, typer.Option("--level", help="zstd level.")] = 3,
) -> None:
    """Archive ratio and speed on a simulated feed; batch read of the archived journal against it uncompressed."""
    from ..bench import report
    from ..bench.archive import run

    report(run(frames=frames, level=level), json_out)


@command(bench_app, name="import")
def bench_import_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames of the simulated feed.")] = 500_000,
) -> None:
    """`kftools import` against `kftools export` of the same journal, in pairs in the same run."""
    from ..bench import report
    from ..bench.importer import run

    report(run(frames=frames), json_out)


@command(bench_app, name="throughput")
def bench_throughput_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames per measurement.")] = 2_000_000,
) -> None:
    """Append, per-frame read and batch numpy read throughput."""
    from ..bench import report
    from ..bench.throughput import run

    report(run(frames=frames), json_out)


@command(bench_app, name="kungfu")
def bench_kungfu_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in each journal.")] = 1_000_000,
) -> None:
    """Batch read of a Kungfu journal against a kftools journal of the same frames (target ratio >= 0.5)."""
    from ..bench import report
    from ..bench.kungfu import run

    report(run(frames=frames), json_out)


@command(bench_app, name="merge")
def bench_merge_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in all, over the journals, for the batch merge.")] = 8_000_000,
    journals: Annotated[int, typer.Option("--journals", help="Journals merged.")] = 8,
    per_frame: Annotated[int, typer.Option("--per-frame-frames", help="Frames in all for the per-frame measurements.")] = 1_000_000,
) -> None:
    """Merging several bursty journals by gen_time: batches and per-frame iteration against a single Reader."""
    from ..bench import report
    from ..bench.merge import run

    report(run(frames=frames, journals=journals, per_frame_frames=per_frame), json_out)


@command(bench_app, name="size")
def bench_size_cmd(
    json_out: JsonOpt = False,
    sizes: Annotated[str, typer.Option("--sizes", help="Comma-separated frame counts of the big journals (each skipped when there is no room).")] = "10000000,100000000",
    repeat: Annotated[int, typer.Option("--repeat", help="Runs of each command on each journal (medians).")] = 5,
    keep: Annotated[Path | None, typer.Option("--keep", help="Make (or reuse) the journals in this folder and keep them.")] = None,
) -> None:
    """cat -n 5, info, verify --quick, monitor --once, a Writer opened to append and tail's screens on a 1-frame
    journal against big ones in the same run: time and peak RSS from outside (target: within 50 ms, under 100 MB)."""
    from ..bench import report
    from ..bench.size import run

    try:
        big = tuple(int(x) for x in sizes.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--sizes {sizes!r}: frame counts separated by commas") from None
    if repeat < 1 or any(n < 2 for n in big):
        raise UsageError("--repeat must be >= 1 and every size >= 2")
    report(run(big, repeat=repeat, keep=None if keep is None else str(keep)), json_out)


@command(bench_app, name="all")
def bench_all_cmd(
    json_out: JsonOpt = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON object to this file.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Smaller runs (about a minute) for a first look.")] = False,
) -> None:
    """Every benchmark in one run: latency (Python and C++), throughput, export, replay, merge."""
    from ..bench import report, run_all

    results = run_all(quick=quick, progress=lambda name: warn(f"running bench {name} ...") if not json_out else None)
    if out is not None:
        out.write_text(json.dumps(results, indent=1) + "\n")
    report(results, json_out)

