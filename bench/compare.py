"""Issue 25's "Measured before and after": the same benchmarks on an older checkout and on this one, alternating.

Each run is a subprocess ``PYTHONPATH=<tree> python -m kftools.cli bench NAME --json ...`` with this script's
interpreter (the same venv for both sides), started in an empty folder so that nothing but ``<tree>`` supplies
``kftools``. Before and after alternate run by run, and which side goes first flips every round, so a machine
that gets busier or quieter during the comparison weighs on both columns alike.

    git worktree add /tmp/kf-before 261b49f && (cd /tmp/kf-before && python setup.py build_ext --inplace)
    python bench/compare.py --before /tmp/kf-before --repeat 3 --out /tmp/before-after.json

Prints one table (key, before median, after median, after/before, verdict) and writes every raw run to
``--out``. A row is flagged SLOWER (or BIGGER, for memory) when it is worse beyond noise: every after run is
worse than every before run (the spreads of the repeats do not overlap) and the medians differ by more than
``--tolerance``. Only speeds (``*_per_s``, ``achieved_speed``), times (``*_ns``, ``seconds``) and peak RSS are
judged; counts and in-run ratios are shown as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


@dataclass
class Bench:
    """One ``kftools bench`` command: its flags and its size options (scaled by ``--scale``)."""

    name: str
    sizes: dict[str, int] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    def args(self, scale: float, supported: set[str]) -> tuple[list[str], list[str]]:
        """The command line's arguments after ``bench NAME --json``, and the options left out because the
        tree's bench lacks them."""
        args, dropped = [], []
        for opt, n in self.sizes.items():
            if opt in supported:
                args += [opt, str(n if opt in NOT_SCALED else max(1, round(n * scale)))]
            else:
                dropped.append(opt)
        for flag in self.flags:
            (args.append if flag in supported else dropped.append)(flag)
        return args, dropped


#: options that are not sizes (the backtest's own repeats: this script repeats)
NOT_SCALED = {"--repeat"}
# sizes for about ten minutes at --repeat 3 on the idle 2-core VM; `latency --cpp` has fixed sizes of its own
# (3 x 200,000 samples, about half a minute a run), which --scale cannot shrink
BENCHES = [
    Bench("throughput", {"--frames": 1_000_000}),
    Bench("latency", {"--samples": 50_000}, ("--cpp",)),
    Bench("replay", {"--frames": 100_000}),
    Bench("export", {"--frames": 1_000_000, "--baseline-frames": 100_000}),
    Bench("merge", {"--frames": 4_000_000, "--per-frame-frames": 500_000}),
    Bench("backtest", {"--frames": 200_000, "--gateway-frames": 5_000, "--repeat": 1}),
]

HIGHER = re.compile(r"(_per_s|_per_cpu_s|achieved_speed)$")
LOWER = re.compile(r"(_ns|\.seconds|peak_rss_mb|peak_rss_kb)$")
NOT_JUDGED = re.compile(r"(interval_ns|late_over_1ms.*)$")


def direction(key: str) -> str | None:
    """``higher`` or ``lower`` (which is better) for a measure this script judges, else None."""
    if NOT_JUDGED.search(key):
        return None
    if HIGHER.search(key):
        return "higher"
    if LOWER.search(key):
        return "lower"
    return None


def verdict(key: str, before: list[float], after: list[float], tolerance: float) -> str:
    """SLOWER/BIGGER when after is worse beyond noise, faster/smaller when better beyond it, ``~`` within it,
    ``""`` for what is not judged. Beyond noise: the runs' spreads do not overlap and the medians differ by more
    than ``tolerance`` (a fraction)."""
    d = direction(key)
    if d is None or not before or not after:
        return ""
    if len(before) < 2 or len(after) < 2:
        return "? (1 run)"
    b, a = statistics.median(before), statistics.median(after)
    worse, better = ("SLOWER", "faster") if "rss" not in key else ("BIGGER", "smaller")
    if d == "higher":
        if max(after) < min(before) and a < b * (1 - tolerance):
            return worse
        if min(after) > max(before) and a > b * (1 + tolerance):
            return better
    else:
        if min(after) > max(before) and a > b * (1 + tolerance):
            return worse
        if max(after) < min(before) and a < b * (1 - tolerance):
            return better
    return "~"


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env["COLUMNS"] = "200"  # --help's option table on one line per option
    return env


def check_tree(python: str, tree: Path, work: str) -> None:
    """Refuse a tree whose ``kftools`` would not be the one imported, or whose C extensions are not built in place
    (the Python fallbacks would make that side look slow)."""
    if not (tree / "kftools" / "__init__.py").is_file():
        sys.exit(f"compare: {tree}: no kftools package here (give the root of a checkout)")
    stale = []
    for src in sorted((tree / "kftools").rglob("*.c")):
        built = list(src.parent.glob(src.stem + ".*.so"))
        if not built:
            sys.exit(f"compare: {src}: not built in place (cd {tree} && {python} setup.py build_ext --inplace)")
        # whole seconds: build_ext copies the library with its time cut to the second
        if int(max(b.stat().st_mtime for b in built)) < int(src.stat().st_mtime):
            stale.append(str(src))
    if stale:
        print(f"compare: warning: older than their sources, rebuild them: {', '.join(stale)}", file=sys.stderr)
    p = subprocess.run([python, "-c", "import kftools; print(kftools.__file__)"], env=_env(tree), cwd=work,
                       capture_output=True, text=True)
    got = Path(p.stdout.strip()).resolve() if p.returncode == 0 else None
    if got != (tree / "kftools" / "__init__.py").resolve():
        sys.exit(f"compare: {tree}: PYTHONPATH={tree} imports kftools from {got or p.stderr.strip()}")


def supported_options(python: str, tree: Path, name: str, work: str) -> set[str] | None:
    """The options ``kftools bench NAME`` takes in ``tree`` (from its --help), or None when it has no such bench."""
    p = subprocess.run([python, "-m", "kftools.cli", "bench", name, "--help"], env=_env(tree), cwd=work,
                       capture_output=True, text=True)
    if p.returncode != 0:
        if "No such command" in p.stderr:
            return None
        why = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        sys.exit(f"compare: {tree}: kftools bench {name} --help failed: {why}")
    # rich's option table ("│ --frames  N  ...") or click's plain help ("  --frames N ...")
    return set(re.findall(r"^[│|\s]\s*(--[a-z][a-z0-9-]*)", p.stdout, re.MULTILINE))


def run_once(python: str, tree: Path, name: str, args: list[str], work: str) -> dict:
    """One run: the bench's JSON, its wall time, the load average before it; ``error`` when it failed."""
    cmd = [python, "-m", "kftools.cli", "bench", name, "--json", *args]
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=_env(tree), cwd=work, capture_output=True, text=True)
    run = {"bench": name, "tree": str(tree), "args": args, "loadavg_1m_before": round(load, 2),
           "wall_s": round(time.monotonic() - t0, 2)}
    lines = p.stdout.strip().splitlines()
    try:
        if p.returncode != 0 or not lines:
            raise ValueError(f"exit {p.returncode}")
        run["results"] = json.loads(lines[-1])
    except ValueError as e:
        run["error"] = f"{e}: {(p.stderr.strip().splitlines() or [''])[-1]}"
    return run


def _save(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def collect(runs: list[dict], side: str) -> dict[str, list[float]]:
    """key -> the values of every run of one side (numbers only)."""
    out: dict[str, list[float]] = {}
    for r in runs:
        if r["side"] == side:
            for k, v in r.get("results", {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out.setdefault(k, []).append(v)
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:,.3g}"


def table(runs: list[dict], tolerance: float) -> list[list[str]]:
    """Rows of key, before median, after median, after/before, verdict; keys in the order the benches print them."""
    before, after = collect(runs, "before"), collect(runs, "after")
    keys = list(dict.fromkeys([*after, *before]))
    rows = [["key", "before", "after", "after/before", "verdict"]]
    for k in keys:
        b = statistics.median(before[k]) if k in before else None
        a = statistics.median(after[k]) if k in after else None
        ratio = "-" if a is None or b is None else "1.000" if a == b else "inf" if b == 0 else f"{a / b:.3f}"
        rows.append([k, _num(b), _num(a), ratio, verdict(k, before.get(k, []), after.get(k, []), tolerance)])
    return rows


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 or i == 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="the older checkout (C extensions built in place)")
    ap.add_argument("--after", type=Path, default=HERE, help=f"the newer checkout (default: {HERE})")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each bench on each side (default 3)")
    ap.add_argument("--only", default="", help="comma-separated benches (default: " +
                    ",".join(b.name for b in BENCHES) + ")")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every bench's sizes (0.01 for a smoke test)")
    ap.add_argument("--tolerance", type=float, default=0.05,
                    help="medians must differ by more than this fraction to flag a row (default 0.05)")
    ap.add_argument("--out", type=Path, default=Path("before-after.json"),
                    help="every raw run, as JSON (default before-after.json)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter for both sides (default: this one)")
    opts = ap.parse_args(argv)
    if opts.repeat < 1 or opts.scale <= 0:
        ap.error("--repeat must be at least 1 and --scale above 0")
    names = [n for n in opts.only.split(",") if n] or [b.name for b in BENCHES]
    unknown = set(names) - {b.name for b in BENCHES}
    if unknown:
        ap.error(f"--only: no bench {', '.join(sorted(unknown))} (choose from {', '.join(b.name for b in BENCHES)})")
    benches = [b for b in BENCHES if b.name in names]
    sides = {"before": opts.before.resolve(), "after": opts.after.resolve()}

    with tempfile.TemporaryDirectory(prefix="kftools-compare-") as work:
        for tree in sides.values():
            check_tree(opts.python, tree, work)
        plan, notes = [], []
        for b in benches:
            supported = {s: supported_options(opts.python, t, b.name, work) for s, t in sides.items()}
            missing = [s for s, o in supported.items() if o is None]
            if missing:
                notes.append(f"{b.name}: skipped, no such bench in the {' and '.join(missing)} tree")
                continue
            both = set.intersection(*(o for o in supported.values() if o is not None))
            args, dropped = b.args(opts.scale, both)
            if dropped:
                notes.append(f"{b.name}: {' '.join(dropped)} left out (not in both trees)")
            plan.append((b.name, args))
        for n in notes:
            print(f"compare: {n}", file=sys.stderr)

        doc = {"before": str(sides["before"]), "after": str(sides["after"]), "python": opts.python,
               "repeat": opts.repeat, "scale": opts.scale, "tolerance": opts.tolerance, "notes": notes,
               "plan": [{"bench": n, "args": a} for n, a in plan], "runs": []}
        runs: list[dict] = doc["runs"]
        t0 = time.monotonic()
        try:
            for rnd in range(opts.repeat):
                order = ["before", "after"] if rnd % 2 == 0 else ["after", "before"]
                for name, args in plan:
                    for side in order:
                        r = run_once(opts.python, sides[side], name, args, work)
                        r.update(side=side, round=rnd)
                        runs.append(r)
                        _save(opts.out, doc)
                        status = f"error: {r['error']}" if "error" in r else f"{r['wall_s']:.1f} s"
                        print(f"compare: round {rnd + 1}/{opts.repeat} {name} {side}: {status}", file=sys.stderr)
        except KeyboardInterrupt:
            print("compare: interrupted; the table covers the runs done", file=sys.stderr)
        doc["wall_s"] = round(time.monotonic() - t0, 1)
        _save(opts.out, doc)

    print_table(table(runs, opts.tolerance))
    failed = [r for r in runs if "error" in r]
    for r in failed:
        print(f"compare: {r['bench']} ({r['side']}, round {r['round'] + 1}) failed: {r['error']}", file=sys.stderr)
    print(f"compare: {len(runs)} runs in {doc['wall_s']:.0f} s; raw runs in {opts.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
