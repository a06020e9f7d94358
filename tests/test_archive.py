"""Archived pages: every command reads them transparently, unarchive is byte-identical, a kill -9 loses nothing,
and sealed-page checksums catch damage that leaves every header plausible."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kftest import KFTOOLS, ROOT, run_cli

import kftools
from kftools.cat import cat
from kftools.info import journal_info
from kftools.journal.archive import archive, read_archive_info, unarchive
from kftools.journal.checksums import read_checksums, record_checksums
from kftools.journal.format import page_path
from kftools.journal.pages import journal_pages
from kftools.journal.recovery import verify
from kftools.journal.registry import DEFAULT_REGISTRY

TIMEOUT = 120


def write_journal(path, n, page_size=8192, seed=0):
    rng = random.Random(seed)
    with kftools.Writer(path, page_size=page_size) as w:
        for i in range(n):
            k = rng.random()
            if k < 0.8:
                w.write_ticker(rng.choice(["AAPL", "MSFT"]), rng.random() * 100, padding=rng.randrange(0, 40))
            elif k < 0.9:
                w.write_order("AAPL", i, 0, 0, 1.5, 10.0, client_order_id=f"c{i}")
            else:
                w.write_trade("MSFT", i, 2.5, 3.0)


def page_digests(path) -> dict[str, str]:
    out = {}
    for p in sorted(glob.glob(glob.escape(path) + "*")):
        if p == path or p[len(path) + 1 :].isdigit():
            with open(p, "rb") as fh:
                out[os.path.basename(p)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def what_commands_see(path, tmp, cli: bool) -> dict:
    """What the library (and with ``cli`` every read command, as subprocesses) reads from a journal."""
    out: dict = {}
    if cli:
        for args in (("cat", path), ("cat", "-F", "jsonl", "-n", "7", path), ("verify", "--json", path)):
            res = run_cli(*args)
            assert res.returncode == 0, res.stderr
            out[args] = res.stdout if args[0] != "verify" else {
                k: v for k, v in json.loads(res.stdout).items() if k != "page_list"}
        info = json.loads(run_cli("info", "--json", path).stdout)
        out["info"] = (info["frames"], info["by_type"], info["pages"], info["capacity"], info["used_bytes"])
        pq_out = os.path.join(tmp, f"x{len(os.listdir(tmp))}.parquet")
        assert run_cli("export", "-q", path, pq_out).returncode == 0
        out["export"] = pq.read_table(pq_out).to_pylist()
        res = run_cli("replay", "--max", "--json", path, "-o", os.path.join(tmp, f"r{len(os.listdir(tmp))}.dat"))
        assert res.returncode == 0, res.stderr
        out["replay"] = json.loads(res.stdout)["frames"]
    else:
        buf = io.StringIO()
        assert cat(path, registry=DEFAULT_REGISTRY, out=buf, fmt="jsonl").damage is None
        out["cat"] = buf.getvalue()
        rep = verify(path)
        out["verify"] = (rep.clean, rep.frames, len(rep.pages))
        info = journal_info(path)
        out["info"] = (info.frames, info.by_type, info.pages, info.capacity, info.used_bytes)
    with kftools.Reader(path) as r:
        out["batches"] = [(b.page_index, b.offsets.tolist(), b.headers.tobytes()) for b in r.batches(batch_size=333)]
        out["frames"] = [bytes(f.raw) for f in r]
        followed: list[bytes] = []
        # the journal is complete: the follower stops once it has as many frames as iteration gave
        for f in r.follow(stop=lambda: len(followed) >= len(out["frames"])):
            followed.append(bytes(f.raw))
        out["follow"] = followed
    return out


def test_every_command_reads_an_archived_journal(tmp_path):
    path = str(tmp_path / "j.dat")
    write_journal(path, 900)
    before = what_commands_see(path, str(tmp_path), cli=True)
    assert len(archive([path]).pages) >= 3
    assert what_commands_see(path, str(tmp_path), cli=True) == before


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 1500), page_size=st.sampled_from([4096, 8192, 20000]), seed=st.integers(0, 99),
       level=st.integers(1, 9))
def test_archive_round_trip_every_command_reads_the_same(tmp_path_factory, n, page_size, seed, level):
    tmp = str(tmp_path_factory.mktemp("arch"))
    path = os.path.join(tmp, "j.dat")
    write_journal(path, n, page_size, seed)
    before_bytes = page_digests(path)
    before = what_commands_see(path, tmp, cli=False)
    res = archive([path], level=level)
    npages = len(before_bytes)
    assert len(res.pages) == max(0, npages - 2)  # not the first page, not the last
    for info in res.pages:
        assert not os.path.exists(path + f".{info.page_index}") and os.path.exists(info.path)
    assert what_commands_see(path, tmp, cli=False) == before
    back = unarchive([path])
    assert len(back.pages) == len(res.pages)
    assert page_digests(path) == before_bytes  # byte-identical pages
    assert not glob.glob(os.path.join(tmp, "*.zst")) and not glob.glob(os.path.join(tmp, "*.part"))


def test_archive_cli_skips_the_writers_pages_and_respects_older_than(tmp_path):
    path = str(tmp_path / "j.dat")
    write_journal(path, 600)
    w = kftools.Writer(path, append=True)  # a live writer: its page stays
    try:
        res = run_cli("archive", "--json", "--older-than", "1d", path)
        assert res.returncode == 0 and json.loads(res.stdout)["pages"] == []
        res = run_cli("archive", "--json", path)
        doc = json.loads(res.stdout)
        assert res.returncode == 0 and len(doc["pages"]) >= 1 and doc["ratio"] > 1
        w.write_ticker("AAPL", 1.0)  # the writer goes on writing next to archived pages
    finally:
        w.close()
    assert run_cli("verify", path).returncode == 0
    assert kftools.Reader(path).count() == 601
    assert run_cli("unarchive", path).returncode == 0
    assert not glob.glob(str(tmp_path / "*.zst"))


def test_a_writer_resumes_after_archived_pages(tmp_path):
    path = str(tmp_path / "j.dat")
    write_journal(path, 600)
    pages = len(page_digests(path))
    archive([path])
    with kftools.Writer(path, append=True) as w:  # resumes on the last page, not on page 0 behind an archived gap
        w.write_ticker("AAPL", 1.0)
    assert len(page_digests(path)) == 2 and kftools.Reader(path).count() == 601
    assert kftools.Reader(path).page_count() == pages


def test_kill_9_during_archive_loses_nothing(tmp_path):
    path = str(tmp_path / "j.dat")
    write_journal(path, 8000, page_size=65536)
    before = page_digests(path)
    expect = run_cli("cat", path).stdout
    rng = random.Random(7)
    for round_ in range(4):
        proc = subprocess.Popen([*KFTOOLS, "archive", "--level", "19", path], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # kill at a varied point after the run has visibly started (a temporary or an archive exists)
        deadline = time.monotonic() + TIMEOUT
        polls = rng.randrange(0, 40)
        while proc.poll() is None and time.monotonic() < deadline:
            started = glob.glob(str(tmp_path / "*.part")) or glob.glob(str(tmp_path / "*.zst"))
            if started:
                if polls == 0:
                    break
                polls -= 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        res = run_cli("cat", path)
        assert res.returncode == 0 and res.stdout == expect, f"round {round_}: {res.stderr}"
        assert run_cli("verify", path).returncode == 0
    assert run_cli("archive", path).returncode == 0  # a later run finishes the job
    assert not glob.glob(str(tmp_path / "*.part"))
    assert run_cli("cat", path).stdout == expect
    assert run_cli("unarchive", path).returncode == 0
    assert page_digests(path) == before


def test_checksums_catch_damage_inside_a_payload(tmp_path):
    path = str(tmp_path / "j.dat")
    write_journal(path, 400)
    assert record_checksums(path) >= 2
    assert record_checksums(path) == 0  # recorded once
    page = path + ".1"
    with open(page, "r+b") as fh:  # flip one bit of a price: every header stays plausible
        fh.seek(64 + 32 + 20)
        b = fh.read(1)
        fh.seek(64 + 32 + 20)
        fh.write(bytes([b[0] ^ 1]))
    res = run_cli("verify", path)
    assert res.returncode == 3
    assert f"{page}: page 1 offset 64: checksum mismatch" in res.stderr


def test_the_last_pages_frames_are_checksummed_and_stay_true_when_a_writer_resumes(tmp_path):
    """The writer's last page is not sealed: its frames so far are recorded (KFP1) once no writer holds it."""
    path = str(tmp_path / "j.dat")
    write_journal(path, 400)
    last = len(journal_pages(path)) - 1
    assert last >= 1
    with kftools.Writer(path, append=True) as w:
        w.write_ticker("AAPL", 1.0)
        assert record_checksums(path) >= 1 and last not in read_checksums(path)  # a writer holds it: not yet
    assert record_checksums(path) == 1 and record_checksums(path) == 0  # once per state of the page
    cursor = read_checksums(path)[last]["write_cursor"]
    with kftools.Writer(path, append=True) as w:  # a writer resumes and appends: the recorded frames are unchanged
        for _ in range(3):
            w.write_ticker("MSFT", 2.0)
    assert run_cli("verify", path).returncode == 0
    assert record_checksums(path) == 1 and read_checksums(path)[last]["write_cursor"] > cursor
    page = page_path(path, last)
    with open(page, "r+b") as fh:  # flip one bit inside a committed frame of the last page
        fh.seek(64 + 32 + 20)
        b = fh.read(1)
        fh.seek(64 + 32 + 20)
        fh.write(bytes([b[0] ^ 1]))
    res = run_cli("verify", path)
    assert res.returncode == 3 and f"{page}: page {last} offset 64: checksum mismatch" in res.stderr


def test_damaged_archive_is_named_by_verify(tmp_path):
    path = str(tmp_path / "j.dat")
    write_journal(path, 400)
    archive([path])
    zst = path + ".1.zst"
    info = read_archive_info(zst)
    with open(zst, "r+b") as fh:  # a bit flip inside the compressed data
        at = info.frames[0][0] + info.frames[0][1] // 2
        fh.seek(at)
        b = fh.read(1)
        fh.seek(at)
        fh.write(bytes([b[0] ^ 0x10]))
    res = run_cli("verify", path)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and ".1" in res.stderr
    assert read_checksums(path) != {}  # archive recorded the others' checksums first


def test_format_md_has_the_sidecar_tables():
    from kftest import ROOT as root

    from kftools.journal.format import sidecar_tables

    with open(os.path.join(root, "FORMAT.md")) as fh:
        assert sidecar_tables().strip() in fh.read(), "run `python -m kftools.journal.format` and paste into FORMAT.md"


def test_a_new_journal_of_the_same_name_drops_stale_records_and_force_removes_archives(tmp_path):
    path = str(tmp_path / "j.dat")
    write_journal(path, 500, seed=1)
    record_checksums(path)
    for p in glob.glob(path + "*"):
        if not p.endswith(".checksums"):
            os.unlink(p)  # the pages go, the records stay behind
    write_journal(path, 500, seed=2)
    assert run_cli("verify", path).returncode == 0
    # replaying over an archived output with --force leaves no archived page of the old output behind
    out = str(tmp_path / "out.dat")
    write_journal(out, 900, seed=3)
    archive([out])
    assert glob.glob(out + ".*.zst")
    res = run_cli("replay", "--max", "--force", path, "-o", out)
    assert res.returncode == 0, res.stderr
    assert not glob.glob(out + ".*.zst") and kftools.Reader(out).count() == kftools.Reader(path).count()


def test_a_killed_runs_temporaries_are_removed_and_two_runs_never_overlap(tmp_path):
    """What a kill -9'd archive or unarchive left (`<page>.zst.part`, `<page>.part`) is the next run's to remove;
    a second run while one works is refused, so it never removes a temporary that is still being written."""
    import fcntl

    path = str(tmp_path / "j.dat")
    write_journal(path, 400)
    expect = run_cli("cat", path).stdout
    (tmp_path / "j.dat.1.zst.part").write_bytes(b"half an archive")
    (tmp_path / "j.dat.2.part").write_bytes(b"half a page")  # as an unarchive killed mid-write leaves it
    (tmp_path / "notes.part").write_bytes(b"not ours")
    res = run_cli("archive", path)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.glob("*.part")) == ["notes.part"]
    with open(path, "rb") as fh:  # a run in progress holds the journal
        fcntl.flock(fh, fcntl.LOCK_EX)
        for cmd in ("archive", "unarchive"):
            res = run_cli(cmd, path)
            assert res.returncode != 0 and res.stderr.count("\n") == 1
            assert "another archive or unarchive run is working on this journal" in res.stderr
    assert run_cli("unarchive", path).returncode == 0
    assert run_cli("cat", path).stdout == expect


def test_an_archive_of_many_frames_reads_the_same_and_a_wrong_frame_size_is_named(tmp_path):
    """Pages archived in small frames are decompressed frame by frame in parallel, each into its place;
    a seek table whose sizes are shifted between two frames (totals still right) is damage, named in one line."""
    from kftools.journal.archive import archive_page
    from kftools.journal.format import SEEK_ENTRY, SEEK_FOOTER

    path = str(tmp_path / "j.dat")
    write_journal(path, 400)
    before = what_commands_see(path, str(tmp_path), cli=False)
    info = archive_page(page_path(path, 1), 1, chunk_size=1024)
    assert len(info.frames) >= 4
    assert what_commands_see(path, str(tmp_path), cli=False) == before

    zst = page_path(path, 1) + ".zst"
    with open(zst, "r+b") as fh:
        data = bytearray(fh.read())
        n = len(info.frames)
        first = len(data) - SEEK_FOOTER.size - n * SEEK_ENTRY.size
        e0 = SEEK_ENTRY.unpack(data, first)
        e1 = SEEK_ENTRY.unpack(data, first + SEEK_ENTRY.size)
        SEEK_ENTRY.struct.pack_into(data, first, e0["compressed_size"], e0["decompressed_size"] - 1)
        SEEK_ENTRY.struct.pack_into(data, first + SEEK_ENTRY.size, e1["compressed_size"], e1["decompressed_size"] + 1)
        fh.seek(0)
        fh.write(data)
    for args in (("verify", path), ("cat", path)):
        res = run_cli(*args)
        assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and zst in res.stderr, res.stderr


def test_a_forked_child_reads_archived_pages_too(tmp_path):
    """The decompressing threads do not survive a fork: a child makes its own (it must not wait forever)."""
    from kftools.journal.archive import archive_page

    path = str(tmp_path / "j.dat")
    write_journal(path, 400)
    archive_page(page_path(path, 1), 1, chunk_size=1024)  # several frames: decompressed on the threads
    with kftools.Reader(path) as r:
        n = sum(len(b) for b in r.batches())
    code = ("import os, sys, kftools\n"
            f"with kftools.Reader({path!r}) as r: n = sum(len(b) for b in r.batches())\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            f"    with kftools.Reader({path!r}) as r: os._exit(0 if sum(len(b) for b in r.batches()) == n else 3)\n"
            "_, status = os.waitpid(pid, 0)\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    assert n == 400


def _raw(batches) -> list[bytes]:
    return [b.raw_frames()[0].tobytes() for b in batches]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), keep=st.lists(st.booleans(), min_size=1, max_size=64))
def test_what_a_reader_holds_of_an_archived_page_stays_true_while_later_pages_reuse_memory(tmp_path_factory, seed, keep):
    """Archived pages are decompressed into the memory of earlier archived pages no one reads any more. Batches,
    frames and views kept from any page must read what the plain journal holds after every later page was read,
    in this reader and the next one."""
    import shutil

    from kftools.journal import codec as archive_module

    tmp = tmp_path_factory.mktemp("reuse")
    plain, packed = str(tmp / "plain.dat"), str(tmp / "packed" / "plain.dat")
    write_journal(plain, 700, page_size=4096, seed=seed)
    os.makedirs(os.path.dirname(packed))
    for p in glob.glob(glob.escape(plain) + "*"):
        shutil.copyfile(p, os.path.join(os.path.dirname(packed), os.path.basename(p)))
    assert len(archive([packed]).pages) >= 8
    with kftools.Reader(plain) as r:
        expected = _raw(r.batches())
        expected_frames = [f.raw for f in r.frames()]
    reused = []
    original = archive_module._page_memory

    def page_memory(size, data_size):
        reused.append(any(len(m) == size for m in archive_module._SPARES))
        return original(size, data_size)

    archive_module._page_memory = page_memory
    try:
        held_batches, held_views, held_frames = {}, [], {}
        with kftools.Reader(packed) as r:
            for i, b in enumerate(r.batches()):
                if keep[i % len(keep)]:
                    held_batches[i] = b
                if not keep[(i + 1) % len(keep)]:
                    # a view of the memory alone (its page dropped) must keep the memory from being reused
                    held_views.append((bytes(memoryview(b.page.mm)[: b.page.cursor]), memoryview(b.page.mm)))
        with kftools.Reader(packed) as r:  # the next reader takes the spare memory the first one left
            for i, f in enumerate(r.frames()):
                if keep[i % len(keep)]:
                    held_frames[i] = f
            assert [r.page(i).index for i in range(1, 4)] == [1, 2, 3]
    finally:
        archive_module._page_memory = original
    assert any(reused), "no archived page was decompressed into reused memory"
    assert {i: _raw([b])[0] for i, b in held_batches.items()} == {i: expected[i] for i in held_batches}
    assert {i: f.raw for i, f in held_frames.items()} == {i: expected_frames[i] for i in held_frames}
    for copy, view in held_views:
        assert bytes(view[: len(copy)]) == copy


def test_releasing_an_archived_pages_memory_keeps_its_frames(tmp_path):
    """The tail drops each finished page's memory from its resident set; an archived page's memory is its only
    copy (no page cache behind it), so releasing it must not turn its frames into zeros."""
    from kftools.journal.pages import PageSet

    path = str(tmp_path / "j.dat")
    write_journal(path, 400)
    with kftools.Reader(path) as r:
        before = [f.raw for f in r.frames()]
    archive([path])
    with kftools.Reader(path) as r:
        PageSet.release(r.page(1))
        assert [f.raw for f in r.frames()] == before


def test_a_process_keeps_at_most_its_cap_of_archived_page_memory(tmp_path, monkeypatch):
    """Spare memory outlives the readers (the next one reuses it); a long-lived process keeps no more than the cap,
    and pages larger than it are never kept."""
    from kftools.journal import codec as archive_module

    path = str(tmp_path / "j.dat")
    write_journal(path, 700, page_size=4096)
    assert len(archive([path]).pages) >= 4
    monkeypatch.setattr(archive_module, "_SPARES", [])
    for cap, most in ((4096, 1), (4095, 0)):
        monkeypatch.setattr(archive_module, "MAX_SPARE_BYTES", cap)
        archive_module._SPARES.clear()
        for _ in range(2):
            with kftools.Reader(path) as r:
                assert sum(len(b) for b in r.batches()) == 700
        assert len(archive_module._SPARES) == most
