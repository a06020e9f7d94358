"""``pip install kftools`` is the core and the reading commands: they run with every optional package hidden, and a
command that needs an extra says which one, on one line, having done nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from kftest import ROOT, SAMPLES_DIR, copy_journal

from kftools.journal.archive import archive

#: every package an extra brings (pyproject.toml's optional-dependencies), hidden from the subprocess
HIDDEN = ("matplotlib", "plotly", "prometheus_client", "zstandard", "dask", "distributed")

BLOCKER = f"""
import importlib.abc
import sys


class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Hidden())
"""

# runs each command through the CLI's own entry point in one process (one start for all of them)
RUNNER = """
import contextlib, io, json, sys
from kftools.cli import main
out = {}
for name, argv in json.loads(sys.argv[1]).items():
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            main(argv)
            code = 0
        except SystemExit as x:
            code = x.code or 0
    out[name] = [code, o.getvalue(), e.getvalue()]
import kftools
with kftools.Reader(sys.argv[2]) as r:
    out["to_arrow"] = r.to_arrow().num_rows
out["loaded"] = sorted(m for m in sys.modules if m.partition(".")[0] in {hidden!r})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory):
    """Run commands in a process that cannot import any optional package; returns name -> (exit, out, err)."""
    root = tmp_path_factory.mktemp("extras")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(BLOCKER)
    clean = os.path.join(SAMPLES_DIR, "clean.dat")
    archived = copy_journal(os.path.join(SAMPLES_DIR, "multipage.dat"), str(root))
    assert archive([archived]).pages  # pages only zstandard reads back
    out = root / "out"
    commands = {
        "info": ["info", clean, "--json"],
        "verify": ["verify", clean, "--json"],
        "cat": ["cat", clean, "-F", "jsonl", "-n", "3"],
        "export": ["export", clean, f"{out}.parquet"],
        "replay": ["replay", clean, "--max", "-o", f"{out}.dat", "--json"],
        "simulate": ["simulate", f"{out}.sim.dat", "--frames", "100"],
        "backtest": ["backtest", clean, "--strategy", "any.py", "--results", f"{out}.backtest"],
        "monitor": ["monitor", "--once", clean],
        "archive": ["archive", clean],
        "sweep": ["sweep", clean, "--strategy", "any.py", "-o", f"{out}.sweep"],
        "read archived": ["cat", archived],
    }
    env = {**os.environ, "PYTHONPATH": str(root / "site")}
    env.pop("KFTOOLS_SCHEMA", None)
    r = subprocess.run([sys.executable, "-c", RUNNER.replace("{hidden!r}", repr(HIDDEN)), json.dumps(commands), clean],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), out


def test_the_core_and_reading_commands_need_no_extra(without_extras):
    res, out = without_extras
    for name in ("info", "verify", "cat", "export", "replay", "simulate"):
        code, _stdout, err = res[name]
        assert code == 0, (name, err)
    assert len(res["cat"][1].splitlines()) == 3
    assert json.loads(res["info"][1])["frames"] == res["to_arrow"] == 400
    assert os.path.exists(f"{out}.parquet") and os.path.exists(f"{out}.dat") and os.path.exists(f"{out}.sim.dat")
    assert res["loaded"] == []  # not one optional module was imported


@pytest.mark.parametrize("name, what, extra", [
    ("backtest", "kftools backtest", "backtest"),
    ("sweep", "kftools sweep", "backtest"),
    ("monitor", "kftools monitor", "monitor"),
    ("archive", "kftools archive", "archive"),
    ("read archived", "archiving pages and reading archived ones", "archive"),
])
def test_a_command_missing_its_extra_names_it(without_extras, name, what, extra):
    res, out = without_extras
    code, stdout, err = res[name]
    # cat streams: the frames of the pages before the first archived one are out when it is met (not damage)
    assert code == 1 and (stdout == "" or name == "read archived")
    assert err == f"kftools: error: {what} needs the '{extra}' extra: pip install 'kftools[{extra}]'\n"
    assert not os.path.exists(f"{out}.backtest") and not os.path.exists(f"{out}.sweep")
