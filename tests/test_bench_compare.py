"""bench/compare.py, the before/after harness: run on two small stand-in trees whose ``kftools bench`` answers at
once, so the harness's own rules (alternation, options both trees take, the verdict, the raw runs) are checked
in well under a second or two; the real benches are never run here."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
from kftest import ROOT

COMPARE = os.path.join(ROOT, "bench", "compare.py")
_spec = importlib.util.spec_from_file_location("bench_compare", COMPARE)
assert _spec is not None and _spec.loader is not None
compare = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses look the module up
_spec.loader.exec_module(compare)

# a stand-in for ``python -m kftools.cli bench NAME ...``: an option table for --help (rich's frame, as typer
# prints it), one JSON line otherwise; its rate is the tree's own, its wall time what it was given
FAKE_CLI = """
import json, sys
OPTIONS, RATE = {options!r}, {rate!r}
_, name, *args = sys.argv[1:]
if name not in OPTIONS:
    sys.exit("Error: No such command '" + name + "'.")  # what click says
if "--help" in args:
    print("\\n".join("│ " + o + "   N   what it does   │" for o in OPTIONS[name]))
    sys.exit(0)
unknown = [a for a in args if a.startswith("--") and a not in OPTIONS[name]]
if unknown:
    sys.exit("no such option " + unknown[0])
print(json.dumps({{name + ".rate_per_s": RATE, name + ".seconds": 1 / RATE, name + ".frames": 7}}))
"""


def fake_tree(path, options: dict[str, list[str]], rate: float, built: bool = True):
    pkg = path / "kftools"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text(textwrap.dedent(FAKE_CLI.format(options=options, rate=rate)))
    (pkg / "_scan.c").write_text("/* an extension */\n")
    if built:
        (pkg / "_scan.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    return path


def run_compare(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, COMPARE, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def test_compare_alternates_runs_what_both_trees_take_and_flags_a_slower_after(tmp_path):
    before = fake_tree(tmp_path / "before", {"throughput": ["--json", "--frames"], "latency": ["--json", "--samples"]},
                       rate=100.0)
    after = fake_tree(tmp_path / "after", {"throughput": ["--json", "--frames"], "backtest": ["--json"],
                                           "latency": ["--json", "--samples", "--cpp"]}, rate=50.0)
    out = tmp_path / "runs.json"
    r = run_compare("--before", before, "--after", after, "--repeat", 2, "--scale", 0.001,
                    "--only", "throughput,latency,backtest", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "latency: --cpp left out (not in both trees)" in r.stderr
    assert "backtest: skipped, no such bench in the before tree" in r.stderr
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()[2:]}
    assert rows["throughput.rate_per_s"] == ["100", "50", "0.500", "SLOWER"]
    assert rows["throughput.seconds"][2:] == ["2.000", "SLOWER"]
    assert rows["throughput.frames"] == ["7", "7", "1.000"]  # a count: shown, not judged
    doc = json.loads(out.read_text())
    runs = [(x["round"], x["bench"], x["side"]) for x in doc["runs"]]
    assert runs == [(0, "throughput", "before"), (0, "throughput", "after"), (0, "latency", "before"),
                    (0, "latency", "after"), (1, "throughput", "after"), (1, "throughput", "before"),
                    (1, "latency", "after"), (1, "latency", "before")]
    assert {tuple(x["args"]) for x in doc["runs"] if x["bench"] == "throughput"} == {("--frames", "1000")}
    assert {tuple(x["args"]) for x in doc["runs"] if x["bench"] == "latency"} == {("--samples", "50")}
    assert all(x["results"]["throughput.rate_per_s" if x["bench"] == "throughput" else "latency.rate_per_s"]
               == (100.0 if x["side"] == "before" else 50.0) for x in doc["runs"])


def test_compare_refuses_a_tree_without_its_extensions_built(tmp_path):
    before = fake_tree(tmp_path / "before", {"throughput": ["--json"]}, rate=1.0, built=False)
    after = fake_tree(tmp_path / "after", {"throughput": ["--json"]}, rate=1.0)
    r = run_compare("--before", before, "--after", after, "--only", "throughput", "--out", tmp_path / "o.json",
                    cwd=tmp_path)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        f"compare: {before / 'kftools' / '_scan.c'}: not built in place "
        f"(cd {before} && {sys.executable} setup.py build_ext --inplace)"]
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize(("key", "before", "after", "want"), [
    ("x.frames_per_s", [100, 101, 99], [90, 91, 89], "SLOWER"),  # apart, 10 % lower
    ("x.frames_per_s", [100, 101, 99], [97, 98, 96], "~"),  # apart but within the 5 % tolerance
    ("x.frames_per_s", [100, 120, 80], [90, 110, 70], "~"),  # the spreads overlap
    ("x.frames_per_s", [100, 101, 99], [120, 121, 119], "faster"),
    ("x.p50_ns", [100, 101, 99], [120, 121, 119], "SLOWER"),  # a time: lower is better
    ("x.peak_rss_mb", [100, 101, 99], [120, 121, 119], "BIGGER"),
    ("x.interval_ns", [100, 100], [200, 200], ""),  # a setting, not a measure
    ("x.orders", [1, 1], [2, 2], ""),
    ("x.frames_per_s", [100], [50], "? (1 run)"),
])
def test_compare_verdict(key, before, after, want):
    assert compare.verdict(key, before, after, 0.05) == want
