"""Named reader positions: published by followers, read by info/readers/monitor, stale when the process is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kftest import KFTOOLS, ROOT, run_cli

import kftools
from kftools.errors import UsageError
from kftools.journal.positions import (
    PositionSlot,
    clear_positions,
    pack_position,
    positions_path,
    read_positions,
    reader_lags,
    unpack_position,
)


def write_feed(path, n, page_size=1 << 14):
    with kftools.Writer(path, page_size=page_size, append=True) as w:
        for i in range(n):
            w.write_ticker("AAPL", float(i), 1.0, 2.0, 3.0)


@given(page=st.integers(0, 2**32 - 1), offset=st.integers(64, 2**32 - 1))
def test_position_packing_round_trips(page, offset):
    assert unpack_position(pack_position(page, offset)) == (page, offset)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(total=st.integers(1, 700), consumed=st.data(), batch=st.booleans())
def test_position_is_the_last_consumed_frame_and_lag_counts_the_rest(tmp_path_factory, total, consumed, batch):
    path = str(tmp_path_factory.mktemp("pos") / "f.dat")
    write_feed(path, total, page_size=8192)  # ~100 frames a page: positions cross pages
    with kftools.Reader(path) as r:
        frames = [(f.page_index, f.offset, f.gen_time) for f in r]
        if batch:
            k = consumed.draw(st.integers(0, total))
            it = r.follow_batches(name="b", batch_size=7, idle_timeout=5)
            seen = 0
            while seen < k:
                seen += len(next(it))
            k = seen
            next(it)  # asking for more marks the batches so far consumed (an empty batch once caught up)
        else:
            k = consumed.draw(st.integers(0, total - 1))
            it = r.follow(name="f", idle_timeout=5)
            for _ in range(k + 1):  # frame k+1 handed out: the first k are consumed
                next(it)
        (lag,) = reader_lags(r)
        it.close()
    assert lag.entry.position == (frames[k - 1][:2] if k else None)
    assert lag.frames == total - k
    assert lag.bytes == 80 * (total - k)
    assert lag.entry.state == "alive"
    if 0 < k < total:
        assert lag.seconds == (frames[-1][2] - frames[k - 1][2]) / 1e9
    assert read_positions(path)[0].state == "exited"  # closing the follower released its name


def test_a_live_name_is_refused_and_a_released_one_taken_back(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 10)
    first = PositionSlot(path, "strat-1")
    first.store(0, 64)
    child = subprocess.run([*KFTOOLS[:1], "-c", f"from kftools.journal.positions import PositionSlot; PositionSlot({path!r}, 'strat-1')"],
                           capture_output=True, text=True, cwd=ROOT)
    assert child.returncode != 0 and "in use by pid" in child.stderr
    first.release()
    again = PositionSlot(path, "strat-1")
    assert read_positions(path)[0].position == (0, 64)  # a restarted reader keeps its last position
    again.release()
    with pytest.raises(UsageError):
        PositionSlot(path, "x" * 33)


def _readers(path) -> dict:
    res = run_cli("readers", path, "--json")
    assert res.returncode == 0, res.stderr
    return {r["name"]: r for r in json.loads(res.stdout)["readers"]}


def test_cat_follow_name_killed_is_gone_and_cleared(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 300)
    proc = subprocess.Popen([*KFTOOLS, "cat", "-f", "--name", "strat-1", "--wait", "sleep", path],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        for _ in range(300):
            assert proc.stdout.readline(), "cat -f ended early"
        # the batch is marked consumed when cat asks for more: wait for that event, not for time
        deadline = 600
        while deadline:
            r = _readers(path).get("strat-1")
            if r and r["lag_frames"] == 0 and r["position"] is not None:
                break
            deadline -= 1
        assert r["state"] == "alive" and r["pid"] == proc.pid and r["lag_frames"] == 0
        info = json.loads(run_cli("info", path, "--json").stdout)
        assert [x["name"] for x in info["readers"]] == ["strat-1"]
        assert "strat-1" in run_cli("info", path).stdout
        write_feed(path, 5)  # the writer resumes: 5 more frames the reader may or may not have seen yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    r = _readers(path)["strat-1"]
    assert r["state"] == "gone"
    res = run_cli("readers", path, "--clear")
    assert res.returncode == 0 and "cleared strat-1" in res.stdout
    assert _readers(path) == {}


def test_clear_keeps_live_readers(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 5)
    live = PositionSlot(path, "live")
    try:
        assert clear_positions(path) == []
        with pytest.raises(UsageError):
            clear_positions(path, ["live"])
        assert [e.name for e in read_positions(path)] == ["live"]
    finally:
        live.release()
    assert clear_positions(path, ["live"]) == ["live"]


def test_name_needs_follow_and_read_only_commands_create_nothing(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 5)
    res = run_cli("cat", path, "--name", "x")
    assert res.returncode == 2 and res.stderr.startswith("kftools: error:") and len(res.stderr.splitlines()) == 1
    for args in (("info", path), ("readers", path), ("cat", path), ("verify", path)):
        assert run_cli(*args).returncode == 0
    assert not os.path.exists(positions_path(path))


def test_named_follow_costs_nothing_unnamed(tmp_path):
    """An unnamed follower never touches the positions file."""
    path = str(tmp_path / "f.dat")
    write_feed(path, 50)
    with kftools.Reader(path) as r:
        assert sum(1 for _ in r.follow(idle_timeout=0.01)) == 50
    assert not os.path.exists(positions_path(path))


@pytest.mark.parametrize("command", ["replay", "export"])
def test_replay_and_export_follow_publish_their_name(tmp_path, command):
    path = str(tmp_path / "f.dat")
    write_feed(path, 200)
    out = tmp_path / ("out.dat" if command == "replay" else "out.parquet")
    args = (["replay", "--follow", "--max", "--wait", "sleep", path, "-o", out] if command == "replay"
            else ["export", "--follow", "-q", path, out])
    proc = subprocess.Popen([*KFTOOLS, *map(str, args), "--name", command], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3000):  # until the follower has consumed every frame (an event), with a generous guard
            r = _readers(path).get(command)
            if r and r["lag_frames"] == 0 and r["position"] is not None:
                break
            assert proc.poll() is None, proc.stderr.read()
        assert r["state"] == "alive" and r["pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert _readers(path)[command]["state"] == "exited"  # released its name on the way out


# -- files beside the journal that are not regular files (issue 24 item 12) ---------------------------------
def _one_line_error(res, code=2):
    assert res.returncode == code, (res.returncode, res.stdout[-500:], res.stderr)
    assert "Traceback" not in res.stderr
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("kftools: error:")] == res.stderr.splitlines()
    assert len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("side", [".checksums", ".readers"])
def test_a_fifo_beside_the_journal_is_refused_not_a_hang(tmp_path, side):
    path = str(tmp_path / "f.dat")
    write_feed(path, 1000)  # several pages: archive has sealed pages to checksum
    os.mkfifo(path + side)
    commands = {
        ".checksums": [["verify", path], ["archive", path]],
        ".readers": [["info", path], ["readers", path], ["cat", "-f", "--name", "r", "-n", "0", path]],
    }[side]
    for args in commands:
        res = run_cli(*args, timeout=60)  # blocked in open() for ever before
        _one_line_error(res)
        assert f"{path}{side}: not a regular file" in res.stderr
    res = run_cli("monitor", "--once", "--json", path, timeout=60)
    assert "Traceback" not in res.stderr
    (sample,) = json.loads(res.stdout)["journals"]
    assert sample["frames_total"] == 1000
    if side == ".readers":
        assert "not a regular file" in sample["problem"]
    # nothing new (the writer's page summaries were there before the commands ran)
    assert sorted(f for f in os.listdir(tmp_path) if not f[-1].isdigit() and not f.endswith(".summaries")) == [
        "f.dat", "f.dat" + side]
    with pytest.raises(kftools.UnreadablePage, match="not a regular file"):
        read_positions(path) if side == ".readers" else kftools.journal.checksums.read_checksums(path)


def test_a_symlink_beside_the_journal_is_not_followed(tmp_path):
    path = str(tmp_path / "f.dat")
    write_feed(path, 5)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    os.symlink(target, path + ".checksums")
    res = run_cli("verify", path, timeout=60)
    _one_line_error(res)
    assert "symbolic link" in res.stderr


# -- reader names (item 17) ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a\nb: forged line", "\udcff\udcfe", "tab\there", ""])
def test_a_bad_reader_name_is_refused_before_anything_is_printed(tmp_path, name):
    path = str(tmp_path / "f.dat")
    write_feed(path, 5)
    with pytest.raises(UsageError, match="reader name"):
        PositionSlot(path, name)
    with pytest.raises(UsageError, match="reader name"):
        kftools.Reader(path).follow(name=name)
    arg = os.fsencode(name)  # a non-UTF-8 name reaches the command as the raw bytes a shell passes
    res = subprocess.run([*map(os.fsencode, KFTOOLS), b"cat", b"-f", b"-n", b"3", b"--name", arg, os.fsencode(path)],
                         capture_output=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and res.stdout == b"", res
    assert res.stderr.startswith(b"kftools: error: ") and b"reader name" in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert not os.path.exists(positions_path(path))
    out = str(tmp_path / "out.dat")  # replay used to create its output before the name was refused
    res = subprocess.run([*map(os.fsencode, KFTOOLS), b"replay", b"--follow", b"--max", b"--name", arg,
                          os.fsencode(path), b"-o", os.fsencode(out)], capture_output=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and b"reader name" in res.stderr and not os.path.exists(out)


def test_a_name_with_a_newline_in_an_older_positions_file_cannot_forge_a_line(tmp_path):
    from kftools.journal.positions import _File

    path = str(tmp_path / "f.dat")
    write_feed(path, 3)
    with PositionSlot(path, "ok"):
        pass
    f = _File(path, create=False)
    try:  # as a file written before names were checked (or by another tool) may hold
        f.write_slot(0, name="x\ngone: forged")
    finally:
        f.close()
    res = run_cli("readers", path)
    assert res.returncode == 0 and res.stdout.splitlines() == [res.stdout.splitlines()[0]], res.stdout
    assert res.stdout.startswith("'x\\ngone: forged': ")
