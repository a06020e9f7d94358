"""The core commands run as a user runs them: subprocesses, real files, exit codes, stderr."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys

import pytest
import typer.main
from kftest import KFTOOLS, ROOT, SCHEMA, copy_journal, run_cli

from kftools import Reader, Writer
from kftools.cli import app

SAMPLES_DIR = os.path.join(ROOT, "sample_journals")
CLEAN = os.path.join(SAMPLES_DIR, "clean.dat")
MULTI = os.path.join(SAMPLES_DIR, "multipage.dat")
DAMAGED = os.path.join(SAMPLES_DIR, "damaged.dat")


def test_every_command_and_option_has_help_text():
    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    root = typer.main.get_command(app)
    missing = []
    for path, cmd in walk(root, "kftools"):
        if not (cmd.help or "").strip():
            missing.append(path)
        for p in cmd.params:
            if p.param_type_name == "option" and not (p.help or "").strip() and p.name != "help":
                missing.append(f"{path} {p.opts[0]}")
    assert not missing, f"no help text: {missing}"


def test_info_json():
    r = run_cli("info", MULTI, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["pages"] == 9 and d["frames"] == 1200 and d["health"] == "ok" and d["writer_state"] == "exited"
    assert d["by_type"] == {"Ticker": 960, "Order": 120, "Trade": 120}
    assert d["last_gen_time"] - d["first_gen_time"] == 1199 * 1_000_000


def test_info_text_mentions_what_matters():
    r = run_cli("info", os.path.join(SAMPLES_DIR, "crashed.dat"))
    assert r.returncode == 0
    assert "crashed" in r.stdout and "300" in r.stdout


def test_cat_jsonl_keys_are_the_field_names():
    r = run_cli("cat", CLEAN, "--format", "jsonl", "-n", "20")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 20
    t = next(x for x in rows if x["type"] == "Ticker")
    assert set(t) == {"type", "msg_type", "gen_time", "trigger_time", "source", "dest", "symbol", "last_price",
                      "bid_price", "ask_price", "volume"}
    assert isinstance(t["gen_time"], int) and t["msg_type"] == 1
    o = next(x for x in rows if x["type"] == "Order")
    assert o["client_order_id"].startswith("c-") and o["side"] in ("buy", "sell")  # names, as in text and Parquet
    with Reader(CLEAN) as rd:
        assert [x["gen_time"] for x in rows] == [f.gen_time for f in rd.last(20)]


def test_cat_filters_types_symbols_and_relative_times():
    r = run_cli("cat", MULTI, "-F", "jsonl", "--type", "order,trade", "--symbol", "BTC-USD", "--start", "+100ms",
                "--end", "+300ms")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows and {x["type"] for x in rows} == {"Order", "Trade"} and {x["symbol"] for x in rows} == {"BTC-USD"}
    t0 = 1_795_800_600_000_000_000
    assert all(t0 + 100_000_000 <= x["gen_time"] <= t0 + 300_000_000 for x in rows)


def test_cat_text_and_csv():
    r = run_cli("cat", CLEAN, "-n", "2")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    assert "2026-11-27T17:30:00.399000000Z" in r.stdout
    r = run_cli("cat", CLEAN, "-F", "csv", "-t", "ticker", "-n", "3")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("type,msg_type,gen_time") and len(lines) == 4
    assert all(x.startswith("Ticker,1,") for x in lines[1:])


def test_cat_user_types_with_schema():
    p = os.path.join(SAMPLES_DIR, "user_types.dat")
    r = run_cli("cat", p, "-F", "jsonl", "--schema", SCHEMA, "-n", "4")
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert {x["type"] for x in rows} == {"Quote", "Ticker", "type200"}
    assert any("bid" in x for x in rows) and any("payload" in x for x in rows)
    r = run_cli("cat", p, "-F", "jsonl", "-n", "4", env={"KFTOOLS_SCHEMA": SCHEMA})
    assert "Quote" in r.stdout


def test_cat_into_head_exits_quietly():
    r = subprocess.run(" ".join([*KFTOOLS, "cat", MULTI]) + " | head -3", shell=True, capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert len(r.stdout.splitlines()) == 3
    assert r.stderr == ""


def test_cat_follow_waits_for_the_journal_then_stops_cleanly_on_sigint(tmp_path):
    p = tmp_path / "later.dat"
    proc = subprocess.Popen([*KFTOOLS, "cat", "-f", "-F", "jsonl", str(p)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        waiting = proc.stderr.readline()  # it says it waits before the journal exists
        assert "waiting" in waiting and proc.poll() is None
        with Writer(p, page_size=4096) as w:
            for i in range(200):
                w.write_ticker("F", float(i))
        got = [json.loads(proc.stdout.readline())["last_price"] for _ in range(200)]
        assert got == list(range(200))
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130  # as a plain cat stopped by Ctrl-C (issue 24 item 18)
    assert "Traceback" not in err


def test_verify_and_recover_exit_codes(tmp_path):
    assert run_cli("verify", CLEAN).returncode == 0
    r = run_cli("verify", DAMAGED, "--json")
    assert r.returncode == 3
    d = json.loads(r.stdout)
    assert d["frames"] == 74 and d["damage"]["offset"] == 8144 and "msg_type 0" in d["damage"]["reason"]

    out = tmp_path / "fixed.dat"
    r = run_cli("recover", DAMAGED, "-o", out)
    assert r.returncode == 3 and "dropped" in r.stderr
    with Reader(out) as a, Reader(DAMAGED) as b:
        assert [f.raw for f in a] == [f.raw for f in b]  # exactly the valid prefix, byte for byte
        assert a.damage is None and sum(1 for _ in a) == 74
    assert run_cli("verify", out).returncode == 0
    r = run_cli("recover", CLEAN, "-o", tmp_path / "same.dat")
    assert r.returncode == 0
    r = run_cli("recover", CLEAN, "-o", out)
    assert r.returncode != 0 and "already exists" in r.stderr


def test_recover_nothing_recoverable(tmp_path):
    p = tmp_path / "zero.dat"
    with Writer(p, page_size=4096) as w:
        w.write_ticker("A", 1.0)
    with open(p, "r+b") as fh:
        fh.seek(64)
        fh.write(bytes(80))
    r = run_cli("recover", p, "-o", tmp_path / "out.dat")
    assert r.returncode == 1


def test_recover_in_place_then_writer_resumes(tmp_path):
    p = copy_journal(MULTI, str(tmp_path))
    with open(p + ".3", "r+b") as fh:  # lose a block in page 3
        fh.seek(5000)
        fh.write(b"\xff" * 600)
    assert run_cli("verify", p).returncode == 3
    r = run_cli("recover", p, "--in-place")
    assert r.returncode == 3, r.stderr
    assert run_cli("verify", p).returncode == 0
    assert os.path.exists(p + ".4.damaged") and not os.path.exists(p + ".4")
    with Writer(p, append=True) as w:
        w.write_ticker("AFTER", 1.0)
    with Reader(p) as rd:
        frames = list(rd)
        assert frames[-1].symbol == "AFTER" and rd.damage is None


def test_simulate_writes_the_frames_asked_for(tmp_path):
    p = tmp_path / "sim.dat"
    r = run_cli("simulate", p, "--frames", "5000", "--rate", "0", "--page-size", "65536", "--symbols", "X,Y")
    assert r.returncode == 0, r.stderr
    with Reader(p) as rd:
        frames = list(rd)
    assert len(frames) == 5000
    assert {f.symbol for f in frames} == {"X", "Y"}
    assert {f.type_name for f in frames} == {"Ticker", "Order", "Trade"}


# -- bad input: one line naming the file, non-zero exit, no traceback, nothing written -------------
def _header(cursor=64, capacity=4096, version=1):
    return struct.pack("<IIII", cursor, 0, capacity, version) + bytes(48)


BAD = {
    "missing": (None, "no such journal"),
    "directory": ("DIR", "is a directory"),
    "empty": (b"", "empty file"),
    "tiny": (b"abc", "too small"),
    "text": (b"This is a README file, certainly not a journal.\n" * 20, "not a journal"),
    "version": (_header(version=7) + bytes(4096 - 64), "unsupported journal version 7"),
    "cursor_past_capacity": (_header(cursor=99999) + bytes(4096 - 64), "past the page capacity"),
    "length_past_page": (
        _header(cursor=64 + 32 + 48) + struct.pack("<IIqqII", 5000, 1, 1, 0, 0, 0) + bytes(4096 - 96),
        "runs past the write cursor"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["info", "cat", "verify", "recover"])
def test_bad_input(tmp_path, case, command):
    content, message = BAD[case]
    if case == "directory" and command != "recover":
        message = "no journal in this folder"  # read commands take a folder of journals
    p = tmp_path / "j.dat"
    if content == "DIR":
        p.mkdir()
    elif content is not None:
        p.write_bytes(content)
    before = sorted(os.listdir(tmp_path))
    digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
    args = [command, p] + (["-o", tmp_path / "out.dat"] if command == "recover" else [])
    r = run_cli(*args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert str(p) in err[0] and message in err[0]
    if not (command == "recover" and case in ("cursor_past_capacity", "length_past_page")):
        assert sorted(os.listdir(tmp_path)) == before  # nothing written
    if digest:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == digest


def test_unknown_type_and_bad_time_are_one_line_errors():
    r = run_cli("cat", CLEAN, "--type", "bogus")
    assert r.returncode == 2 and "unknown message type 'bogus'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("cat", CLEAN, "--start", "yesterday-ish")
    assert r.returncode == 2 and "bad time" in r.stderr


def test_python_dash_m_and_console_script_agree():
    r1 = run_cli("info", CLEAN, "--json")
    exe = os.path.join(os.path.dirname(sys.executable), "kftools")
    r2 = subprocess.run([exe, "info", str(CLEAN), "--json"], capture_output=True, text=True)
    assert json.loads(r1.stdout)["frames"] == json.loads(r2.stdout)["frames"] == 400


# -- help, version, completion (issue 12 §4) ---------------------------------------------------
def _command_paths():
    root = typer.main.get_command(app)
    out = []
    for name, cmd in root.commands.items():
        subs = getattr(cmd, "commands", None)
        if subs:
            out += [[name, sub] for sub in subs]
        else:
            out.append([name])
    return out


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_every_command_help_has_an_example_and_plain_placeholders(path):
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert f"Example: kftools {' '.join(path)}" in res.output
    for typer_style in ("{", "<bool>", "<path>", "<int>", "<str>", "<float>", "list["):
        assert typer_style not in res.output, (typer_style, res.output)
    usage = next(line for line in res.output.splitlines() if "Usage:" in line)
    assert usage.split()[-1] in ("[OPTIONS]", "JOURNAL", "JOURNAL...", "PATH"), usage


def test_help_says_which_commands_take_several_journals_and_keeps_literal_brackets():
    from typer.testing import CliRunner

    def usage(*cmd):
        res = CliRunner().invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        return res.output

    for cmd in ("info", "cat", "verify", "tail", "monitor", "archive", "unarchive"):
        assert f"Usage: kftools {cmd} [OPTIONS] JOURNAL... " in usage(cmd)
    for cmd in ("readers", "recover"):  # one journal: no dots
        assert f"Usage: kftools {cmd} [OPTIONS] JOURNAL " in usage(cmd)
    assert "Usage: kftools import [OPTIONS] PARQUET JOURNAL " in usage("import")
    assert "([[alert]] rule = ..., command = ...)" in usage("monitor")  # Rich markup swallowed [[alert]] as `[]`


def test_bare_kftools_prints_help_and_version():
    res = run_cli()
    assert res.returncode == 0 and "Usage: kftools" in res.stdout and "cat" in res.stdout and res.stderr == ""
    res = run_cli("--version")
    from importlib.metadata import version

    assert res.returncode == 0 and res.stdout == f"kftools {version('kftools')}\n"


def test_shell_completion_completes_commands_and_options():
    exe = os.path.join(os.path.dirname(sys.executable), "kftools")  # completion goes by the program's name
    env = dict(os.environ, _KFTOOLS_COMPLETE="complete_bash", COMP_WORDS="kftools ca", COMP_CWORD="1")
    res = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=60)
    assert res.stdout.split() == ["cat"], res.stderr
    env.update(COMP_WORDS="kftools cat --fo", COMP_CWORD="2")
    res = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=60)
    assert set(res.stdout.split()) == {"--format", "--follow"}
    # the shell named, not detected from the process tree (a test runner's tree may hold no shell)
    res = subprocess.run([exe, "--show-completion=bash"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, SHELL="/bin/bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"))
    assert res.returncode == 0 and "_KFTOOLS_COMPLETE=complete_bash" in res.stdout


def test_one_exit_code_table_covers_every_error():
    """Exit codes are decided in one table at the CLI edge; every error class is placed in it on purpose."""
    import inspect

    import kftools
    from kftools import errors
    from kftools.cli import EXIT_CODES, ExitCode, exit_code

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.KftoolsError)]
    assert set(classes) == {c for c in EXIT_CODES if issubclass(c, errors.KftoolsError)}
    assert not [c for c in classes if "exit_code" in vars(c)]  # no exit codes decided in the library
    assert exit_code(errors.UsageError("x")) == ExitCode.BAD_INPUT == 2
    assert exit_code(errors.CorruptJournal("x")) == ExitCode.DAMAGED == 3
    assert exit_code(errors.JournalLocked("x")) == ExitCode.LOCKED == 4

    class Sub(errors.OutputError):
        pass

    assert exit_code(Sub("x")) == ExitCode.BAD_INPUT  # a subclass maps as its nearest listed ancestor
    for c in classes:  # the errors a user can meet are exported from the package
        assert getattr(kftools, c.__name__) is c


def test_a_stop_signal_that_lands_inside_the_wait_does_not_deadlock():
    """SIGTERM/SIGINT handlers run between two bytecodes of the main thread, which may be inside
    ``stop.wait()`` holding the Event's lock: the handler must not take that lock itself."""
    code = (
        "import signal\n"
        "from kftools.cli import stop_on_signals\n"
        "stop = stop_on_signals()\n"
        "handler = signal.getsignal(signal.SIGTERM)\n"
        "with stop._cond:  # where Event.wait holds its lock\n"
        "    handler(signal.SIGTERM, None)\n"
        "assert stop.wait(30)\n"
        "print('stopped')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 0 and res.stdout == "stopped\n", res.stderr


def test_cat_follow_stops_at_once_on_sigint_while_it_prints_what_was_there(tmp_path):
    """Issue 24 item 18: `cat -f` of a large journal printed every existing frame before it looked at Ctrl-C
    (40 s and still printing on 10 M frames); now it stops within a batch, exit 130, like a plain cat."""
    path = tmp_path / "big.dat"
    with Writer(path, page_size=64 << 20) as w:
        for i in range(300_000):
            w.write_ticker("F", float(i), gen_time=1_800_000_000_000_000_000 + i)
    proc = subprocess.Popen([*KFTOOLS, "cat", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline()  # it is printing
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err
    assert len(out.splitlines()) < 290_000  # it did not print the whole journal first


def test_cat_reports_progress_and_draws_no_bar_off_a_terminal(tmp_path):
    """Issue 24 item 31: a long cat said nothing until it ended; the library reports progress, the CLI draws
    it on a terminal's stderr only (never over its own output, never into a pipe)."""
    import io

    from kftools.cat import cat
    from kftools.journal.schemas import load_registry

    path = tmp_path / "p.dat"
    with Writer(path) as w:
        for i in range(140_000):
            w.write_ticker("F", float(i), gen_time=1_800_000_000_000_000_000 + i)
    seen: list = []
    res = cat([str(path)], registry=load_registry(), out=io.StringIO(), progress=lambda n, t: seen.append(n))
    assert res.frames == 140_000 and seen == [65_536, 131_072]
    r = run_cli("cat", path, "-n", "3")
    assert r.returncode == 0 and r.stderr == ""
