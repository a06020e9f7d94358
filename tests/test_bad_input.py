"""Bad input never reaches a traceback (issue 12 §3): schemas, the library's arguments, simulate, usage errors."""

from __future__ import annotations

import os
import signal
import subprocess

import numpy as np
import pytest
from kftest import KFTOOLS, ROOT, SAMPLES_DIR, copy_journal, run_cli

import kftools
from kftools.errors import KftoolsError, SchemaError, UsageError
from kftools.journal.registry import TypeRegistry
from kftools.simulate import simulate

CLEAN = os.path.join(SAMPLES_DIR, "clean.dat")


def one_error_line(r, code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stdout[-500:], r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kftools: error: "), r.stderr
    return lines[0]


# -- schemas -----------------------------------------------------------------------------
BAD_SCHEMAS = {
    "redefines a built-in id": ('[[types]]\nid = 1\nname = "MyTicker"\nfields = [["x", "f64"]]\n', "built-in type"),
    "repeats an id": ('[[types]]\nid = 100\nname = "A"\nfields = [["x", "f64"]]\n'
                      '[[types]]\nid = 100\nname = "B"\nfields = [["y", "f64"]]\n', "repeats id 100"),
    "id = true": ('[[types]]\nid = true\nname = "A"\nfields = [["x", "f64"]]\n', "must be an integer"),
    "repeats an identical type": ('[[types]]\nid = 100\nname = "A"\nfields = [["x", "f64"]]\n' * 2, "repeats id 100"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCHEMAS))
def test_bad_schema_is_refused_by_every_command_and_recover_cuts_nothing(tmp_path, case):
    text, msg = BAD_SCHEMAS[case]
    schema = tmp_path / "s.toml"
    schema.write_text(text)
    j = copy_journal(CLEAN, str(tmp_path))
    before = open(j, "rb").read()
    for args in (["verify", j], ["cat", j, "-n", "1"], ["recover", j, "--in-place"]):
        line = one_error_line(run_cli(*args, "--schema", schema))
        assert msg in line and str(schema) in line
    assert open(j, "rb").read() == before and kftools.verify(j).clean
    with pytest.raises(SchemaError, match=msg):
        TypeRegistry().load_schema(schema)


def test_register_type_refuses_replacing_builtin_and_earlier_types():
    reg = TypeRegistry()
    with pytest.raises(SchemaError, match="built-in type 'Ticker'"):
        reg.register(1, "Ticker2", [("x", "f64")])
    reg.register(100, "Quote", [("bid", "f64")])
    with pytest.raises(SchemaError, match="already the type 'Quote'"):
        reg.register(100, "Quote", [("bid", "f64"), ("ask", "f64")])
    with pytest.raises(SchemaError, match="already the type 'Quote'"):
        reg.register(100, "Other", [("bid", "f64")])
    with pytest.raises(SchemaError, match="must be an integer"):
        reg.register(True, "Flag", [("x", "u8")])
    # the same declaration again (a schema given twice) is harmless
    assert reg.register(100, "Quote", np.dtype([("bid", "<f8")])).layout.size == 8
    assert reg.get(1).name == "Ticker" and reg.get(100).layout.names == ("bid",)


# -- the library's arguments -------------------------------------------------------------------
@pytest.mark.parametrize("call, msg", [
    (lambda w: w.write_ticker("AAPL", "x"), "bad argument"),
    (lambda w: w.write_ticker(7, 1.0), "symbol must be str or bytes"),
    (lambda w: w.write_ticker("A" * 17, 1.0), "longer than 16 bytes"),
    (lambda w: w.write_order("AAPL", 1, side=7), "side 7"),
    (lambda w: w.write_order("AAPL", 1, side=0, order_type=5), "order_type 5"),
    (lambda w: w.write_order("AAPL", "one", side=0), "bad argument"),
    (lambda w: w.write_trade("AAPL", 1, 1.0, 1.0, side=2), "side 2"),
    (lambda w: w.write("Ticker", symbol="A", last_price="high"), "bad field value"),
    (lambda w: w.write(1.5, b"x"), "msg_type"),
])
def test_writer_arguments_raise_kftools_errors_and_write_nothing(tmp_path, call, msg):
    path = str(tmp_path / "j.dat")
    with kftools.Writer(path, page_size=4096) as w:
        w.write_ticker("OK", 1.0)
        with pytest.raises(UsageError, match=msg):
            call(w)
        w.write_ticker("OK", 2.0)
    assert [f.last_price for f in kftools.Reader(path)] == [1.0, 2.0]


@pytest.mark.parametrize("call", [
    lambda w: w.write_ticker("A", 1.0),
    lambda w: w.write_order("A", 1, 0),
    lambda w: w.write_trade("A", 1, 1.0, 1.0),
    lambda w: w.write("Ticker", symbol="A"),
    lambda w: [w.write_ticker("A", float(i)) for i in range(500)],  # would roll to a new page
])
def test_writing_after_close_is_a_kftools_error(tmp_path, call):
    path = str(tmp_path / "j.dat")
    w = kftools.Writer(path, page_size=4096)
    w.write_ticker("A", 0.0)
    w.close()
    with pytest.raises(UsageError, match="after close"):
        call(w)
    assert kftools.Reader(path).count() == 1 and not os.path.exists(path + ".1")


# -- simulate --------------------------------------------------------------------------------
@pytest.mark.parametrize("args, msg", [
    (["{tmp}/missing/x.dat"], "does not exist"),
    (["{tmp}"], "is a directory"),
    (["{tmp}/x.dat", "--symbols", ""], "at least one symbol"),
    (["{tmp}/x.dat", "--symbols", ",,"], "at least one symbol"),
    (["{tmp}/x.dat", "--symbols", "AAPL,THIS-SYMBOL-IS-TOO-LONG"], "1 to 16 bytes"),
    (["{tmp}/x.dat", "--rate", "-1"], "--rate"),
    (["{tmp}/x.dat", "--rate", "inf"], "--rate"),
    (["{tmp}/exists.dat"], "only with --append"),
    (["{tmp}/new.dat", "--append"], "no such journal to append to"),
    (["{tmp}/x.dat", "--frames", "many"], "Invalid value for '--frames'"),
])
def test_simulate_validates_before_writing_anything(tmp_path, args, msg):
    simulate(str(tmp_path / "exists.dat"), rate=0, frames=5)
    before = sorted(os.listdir(tmp_path)), open(tmp_path / "exists.dat", "rb").read()
    extra = [] if "--frames" in args else ["--frames", "10"]
    r = run_cli("simulate", *[a.format(tmp=tmp_path) for a in args], *extra, "--rate", "0") if "--rate" not in args \
        else run_cli("simulate", *[a.format(tmp=tmp_path) for a in args], *extra)
    assert msg in one_error_line(r)
    assert (sorted(os.listdir(tmp_path)), open(tmp_path / "exists.dat", "rb").read()) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_simulate_into_an_unwritable_folder(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    assert "not writable" in one_error_line(run_cli("simulate", d / "x.dat", "--frames", "5"))
    assert os.listdir(d) == []


def test_simulate_append_says_so_and_adds_frames(tmp_path):
    p = tmp_path / "x.dat"
    assert run_cli("simulate", p, "--frames", "30", "--rate", "0").returncode == 0
    r = run_cli("simulate", p, "--frames", "20", "--rate", "0", "--append")
    assert r.returncode == 0 and "appended 20 frames" in r.stderr
    assert kftools.Reader(str(p)).count() == 50 and kftools.verify(str(p)).clean


# -- Typer usage errors: one line, exit 2, everywhere ----------------------------------------------
@pytest.mark.parametrize("args, msg", [
    (["cat"], "Missing argument"),
    (["cat", CLEAN, "--bogus"], "No such option: --bogus"),
    (["cat", CLEAN, "-n", "many"], "Invalid value for '-n'"),
    (["simulate", "never-written.dat", "extra", "--frames", "1"], "unexpected extra argument"),
    (["cat", CLEAN, "--format"], "requires an argument"),
    (["nosuchcommand"], "No such command"),
    (["bench", "replay", "--frames", "x"], "Invalid value for '--frames'"),
    (["cat", CLEAN, "-f", "--wait", "lazy"], "unknown wait policy 'lazy'"),
    (["tail", CLEAN, "--plain", "--wait", "x"], "No such option"),
])
def test_usage_errors_are_one_line_and_exit_2(args, msg):
    assert msg in one_error_line(run_cli(*args))


def test_kftools_alone_prints_help_and_exits_0():
    r = run_cli()
    assert r.returncode == 0 and "simulate" in r.stdout and r.stderr == ""


def test_replay_says_when_the_next_frame_is_far_in_the_future(tmp_path):
    """A gen_time days ahead: the paced replay says it is waiting (it does not sleep in silence)."""
    src = str(tmp_path / "future.dat")
    t0 = 1_764_264_600 * 10**9
    with kftools.Writer(src, page_size=4096) as w:
        w.write_ticker("A", 1.0, gen_time=t0)
        w.write_ticker("A", 2.0, gen_time=t0 + 10 * 86_400 * 10**9)
    out = tmp_path / "o.dat"
    p = subprocess.Popen([*KFTOOLS, "replay", src, "-o", str(out)], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, cwd=ROOT)
    try:
        line = p.stderr.readline()  # the event: the warning is printed before the long wait
        assert line.startswith("kftools: warning: ") and "is due in 864,000 s" in line, line
        assert "10 days" in line or "864,000 s after" in line
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
    assert p.returncode == 130
    assert [f.last_price for f in kftools.Reader(str(out))] == [1.0]


def test_library_errors_are_kftools_errors():
    assert issubclass(UsageError, KftoolsError) and issubclass(SchemaError, KftoolsError)


def test_reader_filters_take_what_the_cli_takes_and_refuse_the_rest():
    r = kftools.Reader(CLEAN)
    everything = list(r)
    t_100ms = everything[0].gen_time + 100_000_000
    assert len(list(r.frames(types=["Ticker"]))) == len(list(r.frames(types=[1]))) == 320
    assert len(list(r.frames(types="ticker,trade"))) == 360
    assert len(list(r.frames(symbols="AAPL,MSFT"))) == len(list(r.frames(symbols=["AAPL", "MSFT"]))) == 160
    assert [f.gen_time for f in r.frames(start="+100ms")] == [f.gen_time for f in everything if f.gen_time >= t_100ms]
    assert len(list(r.frames(start_time="+100ms"))) == len(list(r.follow("+100ms", idle_timeout=0.01))) == 300
    for bad, err in [(dict(types=["Nope"]), kftools.UnknownType), (dict(start_time=1.5), UsageError),
                     (dict(symbols=[1]), UsageError), (dict(start="soon"), UsageError), (dict(types=[None]), UsageError)]:
        with pytest.raises(err):
            list(r.frames(**bad))
    with pytest.raises(UsageError, match="unknown wait policy"):
        r.follow(wait="lazy")


def test_the_readme_exit_code_table_is_what_commands_do(tmp_path):
    """Each code of the README's table, produced by a command as a user would meet it."""
    import re

    from kftest import ROOT

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    table = text[text.index("### Exit codes"):text.index("### Outputs")]
    documented = {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert documented == {0, 1, 2, 3, 4, 130}
    damaged = os.path.join(SAMPLES_DIR, "damaged.dat")
    assert run_cli("verify", CLEAN).returncode == 0
    assert run_cli("verify", damaged).returncode == 3
    assert run_cli("info", CLEAN, "--bogus").returncode == 2
    assert run_cli("info", tmp_path / "missing.dat").returncode == 2
    with kftools.Writer(str(tmp_path / "held.dat"), page_size=4096):
        assert run_cli("simulate", tmp_path / "held.dat", "--append", "--frames", "1").returncode == 4
    zero = tmp_path / "zero.dat"  # a first page whose only frame is garbage: nothing to recover
    with kftools.Writer(str(zero), page_size=4096) as w:
        w.write_ticker("A", 1.0)
    with open(zero, "r+b") as fh:
        fh.seek(64)
        fh.write(bytes(32))
    assert run_cli("recover", zero, "-o", tmp_path / "r.dat").returncode == 1


# -- issue 24 item 16: out-of-range numbers and files nested past the parsers' depth ------------------------
@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "0", "-1"])
def test_monitor_interval_out_of_range_is_one_line(value):
    r = run_cli("monitor", os.path.join(ROOT, "sample_journals", "multipage.dat"), "--interval", value,
                "--listen", "")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--interval" in r.stderr, r.stderr


@pytest.mark.parametrize("what", ["schema.json", "schema.toml", "alerts.toml", "grid.toml"])
def test_files_nested_past_the_parsers_depth_are_one_line(tmp_path, what):
    journal = os.path.join(ROOT, "sample_journals", "multipage.dat")
    f = tmp_path / what
    if what.endswith(".json"):
        f.write_text('{"types": ' + "[" * 200_000 + "]" * 200_000 + "}")
    else:
        f.write_text("x = " + "[" * 200_000 + "]" * 200_000 + "\n")
    args = {"schema.json": ["info", journal, "--schema", f], "schema.toml": ["info", journal, "--schema", f],
            "alerts.toml": ["monitor", journal, "--once", "--config", f],
            "grid.toml": ["sweep", journal, "--strategy", os.path.join(ROOT, "examples", "strategy_maker.py"),
                          "--grid-file", f, "-o", tmp_path / "sw"]}[what]
    r = run_cli(*args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def test_a_type_too_large_for_a_frame_is_refused_by_name(tmp_path):
    body = ", ".join(f'{{ name = "x{i}", type = "char[65536]" }}' for i in range(70_000))
    f = tmp_path / "huge.toml"
    f.write_text(f'[[types]]\nid = 200\nname = "Huge"\nfields = [ {body} ]\n')
    r = run_cli("info", os.path.join(ROOT, "sample_journals", "multipage.dat"), "--schema", f)
    assert r.returncode == 2 and "cannot fit in a frame" in r.stderr and r.stderr.count("\n") == 1, r.stderr
