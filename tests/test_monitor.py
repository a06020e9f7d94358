"""`kftools monitor`: scraped over real HTTP, alerts fired by a kill -9'd writer and a reader that falls behind."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from kftest import KFTOOLS, ROOT, run_cli, wait_for
from prometheus_client.parser import text_string_to_metric_families

import kftools
from kftools.errors import UsageError
from kftools.monitor import load_rules, parse_rule

TIMEOUT = 90  # a failure guard only: every wait below ends on an event

WRITER = """
import sys, kftools
w = kftools.Writer(sys.argv[1], page_size=1 << 16, append=True)
for i in range(int(sys.argv[2])):
    w.write_ticker("AAPL", float(i), 1.0, 2.0, 3.0)
print("ready", flush=True)
sys.stdin.readline()  # hold the journal (and its lock) until told or killed
w.close()
"""


def write_feed(path, n):
    with kftools.Writer(path, page_size=1 << 16, append=True) as w:
        for i in range(n):
            w.write_ticker("AAPL", float(i), 1.0, 2.0, 3.0)


class Proc:
    """A subprocess whose stderr lines are collected by a thread, so a test can wait for one."""

    def __init__(self, args, **kw):
        self.p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, cwd=ROOT, **kw)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, needle: str, *, seen: bool = False) -> str:
        """The next stderr line holding ``needle`` (``seen``: or one read already, while waiting for another)."""
        if seen:
            for line in self.seen:
                if needle in line:
                    return line
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r} on stderr; saw {self.seen}") from None
            self.seen.append(line)
            if needle in line:
                return line

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def start_monitor(*args) -> tuple[Proc, str]:
    mon = Proc([*KFTOOLS, "monitor", "--listen", "127.0.0.1:0", "--interval", "0.05", *map(str, args)])
    url = mon.wait_line("serving metrics on").split()[-1]
    return mon, url


def scrape(url) -> dict:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_scraped_over_http(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 1000)
    now = time.time_ns()
    with kftools.Writer(path, append=True) as w:
        for t in (1_000, 2_000_000):  # trigger-time histogram: 1 us and 2 ms after the trigger
            w.write_ticker("AAPL", 1.0, gen_time=now + t, trigger_time=now)
    mon, url = start_monitor(path)
    try:
        m = scrape(url)
        j = (("journal", path),)
        n = kftools.Reader(path).count()
        assert m[("kftools_frames_total", j)] == n
        assert m[("kftools_pages", j)] >= 1
        assert 0 < m[("kftools_page_fill_ratio", j)] < 1
        assert m[("kftools_writer_state", (("journal", path), ("state", "exited")))] == 1
        assert m[("kftools_writer_state", (("journal", path), ("state", "crashed")))] == 0
        assert m[("kftools_damaged", j)] == 0
        assert m[("kftools_disk_free_bytes", j)] > 0
        assert m[("kftools_bytes_total", j)] == sum(32 + f.length for f in kftools.Reader(path))
        assert m[("kftools_trigger_latency_seconds_count", j)] == 2
        assert m[("kftools_trigger_latency_seconds_bucket", (("journal", path), ("le", "1e-06")))] == 1
        assert m[("kftools_trigger_latency_seconds_bucket", (("journal", path), ("le", "0.001")))] == 1
        assert m[("kftools_trigger_latency_seconds_bucket", (("journal", path), ("le", "0.0025")))] == 2
        assert m[("kftools_trigger_latency_seconds_sum", j)] == pytest.approx(0.002001)
        assert m[("kftools_newest_frame_age_seconds", j)] >= 0
        # sealed pages were checksummed in the background, for verify; the last one's frames too (no writer holds it)
        from kftools.journal.checksums import read_checksums
        from kftools.journal.format import CHECKSUM_MAGIC, CHECKSUM_PREFIX_MAGIC

        pages = int(m[("kftools_pages", j)])
        recs = read_checksums(path)
        assert sorted(recs) == list(range(pages))
        assert [recs[i]["magic"] for i in range(pages)] == [CHECKSUM_MAGIC] * (pages - 1) + [CHECKSUM_PREFIX_MAGIC]
    finally:
        assert mon.stop() == 0


def test_writer_killed_fires_writer_crashed_once_and_clears_on_resume(tmp_path):
    path = str(tmp_path / "f.dat")
    events = tmp_path / "events.txt"
    cmd = f'echo "$KFTOOLS_ALERT_STATE $KFTOOLS_ALERT $KFTOOLS_ALERT_JOURNAL" >> {events}'
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, "500"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert writer.stdout.readline().strip() == "ready"
    mon, url = start_monitor(path, "--alert", "writer_crashed", "--alert-command", cmd)
    try:
        alive = (("journal", path), ("state", "alive"))
        assert scrape(url)[("kftools_writer_state", alive)] == 1
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        mon.wait_line("alert firing: writer_crashed")
        resumed = subprocess.Popen([sys.executable, "-c", WRITER, path, "10"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert resumed.stdout.readline().strip() == "ready"
        mon.wait_line("alert cleared: writer_crashed")
        m = scrape(url)
        assert m[("kftools_writer_state", alive)] == 1
        resumed.stdin.write("\n")
        resumed.stdin.close()
        assert resumed.wait(TIMEOUT) == 0
        # the command ran once per transition (it runs detached: wait for its line, not for time)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and (not events.exists() or len(events.read_text().splitlines()) < 2):
            time.sleep(0.01)
        assert events.read_text().splitlines() == [f"firing writer_crashed {path}", f"cleared writer_crashed {path}"]
    finally:
        assert mon.stop() == 0
    assert sum("alert firing" in line for line in mon.seen) == 1


def test_a_reader_falling_behind_fires_the_lag_alert(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 100)
    reader = subprocess.Popen([*KFTOOLS, "cat", "-f", "--name", "slow", "--wait", "sleep", path],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    mon = None
    try:
        for _ in range(100):
            assert reader.stdout.readline()
        mon, url = start_monitor(path, "--alert", "lag_frames > 200")
        reader.send_signal(signal.SIGSTOP)  # the strategy stalls
        write_feed(path, 1000)
        line = mon.wait_line("alert firing: lag_frames > 200")
        assert "reader slow" in line
        lag = scrape(url)[("kftools_reader_lag_frames", (("journal", path), ("reader", "slow")))]
        assert lag > 200
        reader.send_signal(signal.SIGCONT)
        for _ in range(1000):
            assert reader.stdout.readline()
        mon.wait_line("alert cleared: lag_frames > 200")
    finally:
        reader.send_signal(signal.SIGCONT)
        reader.kill()
        reader.wait()
        if mon is not None:
            assert mon.stop() == 0


def test_once_exit_codes_and_json(tmp_path):
    (tmp_path / "j").mkdir()
    path = str(tmp_path / "j" / "f.dat")
    write_feed(path, 10)
    res = run_cli("monitor", "--once", path)
    assert res.returncode == 0 and res.stdout.startswith("ok:")
    res = run_cli("monitor", "--once", "--json", path, "--alert", "page_fill > 0")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["firing"][0]["rule"] == "page_fill > 0"
    assert doc["journals"][0]["frames_total"] == 10
    cfg = tmp_path / "alerts.toml"
    cfg.write_text('[[alert]]\nrule = "disk_free < 1KiB"\n[[alert]]\nrule = "silent_for > 1h"\n')
    assert run_cli("monitor", "--once", path, "--config", cfg).returncode == 0
    # a folder: every journal in it, none of the files kept beside them
    kftools.Reader(path).follow(name="r")  # a reader-positions file beside it
    assert os.path.exists(path + ".readers")
    res = run_cli("monitor", "--once", "--json", str(tmp_path / "j"))
    assert [j["journal"] for j in json.loads(res.stdout)["journals"]] == [path]


def test_crashed_journal_fails_once_check(tmp_path):
    path = str(tmp_path / "f.dat")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, "5"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert writer.stdout.readline().strip() == "ready"
    writer.kill()
    writer.wait()
    res = run_cli("monitor", "--once", path)
    assert res.returncode == 1 and "ALERT writer_crashed" in res.stdout
    # an --alert of its own (the README's example) adds to the defaults; it never drops crash alerting
    res = run_cli("monitor", "--once", path, "--alert", "lag_seconds > 1")
    assert res.returncode == 1 and res.stdout.count("ALERT writer_crashed") == 1
    res = run_cli("monitor", "--once", path, "--alert", "writer_crashed", "--alert", "lag_seconds > 1")
    assert res.returncode == 1 and res.stdout.count("ALERT writer_crashed") == 1  # given again: still once
    res = run_cli("monitor", "--once", path, "--no-default-alerts", "--alert", "lag_seconds > 1")
    assert res.returncode == 0 and "ALERT" not in res.stdout


def test_default_alerts_stay_unless_left_out(tmp_path):
    assert [r.text for r in load_rules(["lag_seconds > 1"], None, None)] == ["writer_crashed", "damaged", "lag_seconds > 1"]
    assert [r.text for r in load_rules(["lag_seconds > 1"], None, None, defaults=False)] == ["lag_seconds > 1"]
    cfg = tmp_path / "a.toml"
    cfg.write_text('[[alert]]\nrule = "damaged"\ncommand = "page-me"\n')
    rules = load_rules(None, "log-it", str(cfg))
    assert [(r.text, r.command) for r in rules] == [("writer_crashed", "log-it"), ("damaged", "page-me")]


@pytest.mark.parametrize("bad", ["lag_seconds", "writer_crashed > 1", "nope > 1", "disk_free < 1parsecs", "page_fill >"])
def test_bad_rules_are_one_line_errors(tmp_path, bad):
    path = str(tmp_path / "f.dat")
    write_feed(path, 1)
    with pytest.raises(UsageError):
        parse_rule(bad)
    res = run_cli("monitor", "--once", path, "--alert", bad)
    assert res.returncode == 2 and res.stderr.startswith("kftools: error: bad alert rule")
    assert len(res.stderr.splitlines()) == 1


def test_rule_units():
    assert parse_rule("disk_free < 1GiB").threshold == 2**30
    assert parse_rule("silent_for > 5s").threshold == 5
    assert parse_rule("lag_seconds > 250ms").threshold == 0.25
    assert parse_rule("page_fill > 0.9").holds(0.95) and not parse_rule("page_fill > 0.9").holds(0.9)


def test_missing_journal_is_reported_not_a_traceback(tmp_path):
    res = run_cli("monitor", "--once", tmp_path / "nope.dat")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "ALERT damaged" in res.stdout
    assert not os.path.exists(tmp_path / "nope.dat")


# -- issue 24 items 19-22, 24 --------------------------------------------------------------------------------
def _frames(url, path):
    return scrape(url).get(("kftools_frames_total", (("journal", path),)))


def test_a_removed_journal_is_reported_and_one_created_again_is_counted_afresh(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 100)
    mon, url = start_monitor(path)
    try:
        assert _frames(url, path) == 100
        for f in os.listdir(tmp_path):
            os.unlink(tmp_path / f)
        mon.wait_line("alert firing: damaged")  # it cannot be read any more: not readable and sound
        # the line is logged while the check ends: the endpoint serves that check right after
        wait_for(lambda: scrape(url)[("kftools_damaged", (("journal", path),))] == 1, "damaged served")
        m = scrape(url)
        assert ("kftools_frames_total", (("journal", path),)) not in m
        assert ("kftools_writer_state", (("journal", path), ("state", "crashed"))) not in m
        write_feed(path, 30)  # a new journal under the same name
        mon.wait_line("alert cleared: damaged")
        wait_for(lambda: _frames(url, path) == 30, "the new journal's 30 frames counted")
    finally:
        assert mon.stop() == 0
    assert not any("writer_crashed" in line for line in mon.seen)


def test_damage_clears_after_recover_in_place_and_counting_goes_on(tmp_path):
    path = str(tmp_path / "f.dat")
    with kftools.Writer(path, page_size=1 << 12) as w:
        for i in range(300):
            w.write_ticker("AAPL", float(i), 1.0, 2.0, 3.0)
    with open(path + ".2", "r+b") as fh:  # lose a block of page 2
        fh.seek(1000)
        fh.write(b"\xff" * 600)
    mon, url = start_monitor(path)
    try:
        mon.wait_line("alert firing: damaged", seen=True)
        assert run_cli("recover", path, "--in-place").returncode == 3
        mon.wait_line("alert cleared: damaged")
        write_feed(path, 50)  # the writer resumes
        total = kftools.Reader(path).count()
        wait_for(lambda: _frames(url, path) == total, f"{total} frames counted, not {_frames(url, path)}: {scrape(url)}")
        assert scrape(url)[("kftools_damaged", (("journal", path),))] == 0
    finally:
        assert mon.stop() == 0


def test_journals_created_in_a_watched_folder_later_are_monitored(tmp_path):
    first = str(tmp_path / "a.dat")
    write_feed(first, 10)
    mon, url = start_monitor(tmp_path)
    try:
        assert _frames(url, first) == 10
        later = str(tmp_path / "b.dat")
        write_feed(later, 25)
        wait_for(lambda: _frames(url, later) == 25, "the later journal counted")
    finally:
        assert mon.stop() == 0


def test_once_and_archive_of_one_page_write_nothing_beside_the_journal(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 10)
    before = sorted(os.listdir(tmp_path))
    assert run_cli("monitor", "--once", path).returncode == 0
    assert run_cli("monitor", "--once", tmp_path).returncode == 0
    res = run_cli("archive", path)
    assert res.returncode == 0 and "archived 0 page(s)" in res.stdout
    assert sorted(os.listdir(tmp_path)) == before


OUT_OF_FDS = """
import json, os, resource, sys
from kftools.monitor import Monitor, load_rules
path = sys.argv[1]
mon = Monitor([path], load_rules(None, None, None), on_trouble=lambda why: print("trouble", why, flush=True))
first = mon.check()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
mon.watches[path].close()  # its reader must open the journal again, with no descriptor left
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
starved = mon.check()
for fd in held:
    os.close(fd)
again = mon.check()
print(json.dumps([r.to_dict() for r in (first, starved, again)]))
"""


def test_running_out_of_descriptors_is_the_monitors_trouble_not_damage(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 10)
    res = subprocess.run([sys.executable, "-c", OUT_OF_FDS, path], capture_output=True, text=True, cwd=ROOT,
                         timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"trouble {path}: ") and "Too many open files" in lines[0]
    first, starved, again = json.loads(lines[-1])
    for r in (first, starved, again):
        assert r["ok"] and r["journals"][0]["readable"] and r["journals"][0]["damage"] is None
        assert r["journals"][0]["frames_total"] == 10
    assert starved["trouble"] and not again["trouble"]


def test_idle_metrics_connections_are_closed(tmp_path):
    import socket

    path = str(tmp_path / "f.dat")
    write_feed(path, 10)
    mon = Proc([*KFTOOLS, "monitor", "--listen", "127.0.0.1:0", "--interval", "0.05", "--idle-timeout", "0.2", path])
    try:
        url = mon.wait_line("serving metrics on").split()[-1]
        host, port = url.split("/")[2].split(":")
        idle = [socket.create_connection((host, int(port)), timeout=TIMEOUT) for _ in range(5)]
        for s in idle:  # each connection that sent nothing is closed by the server (recv sees the end)
            assert s.recv(1) == b""
            s.close()
        assert scrape(url)[("kftools_frames_total", (("journal", path),))] == 10
    finally:
        assert mon.stop() == 0
