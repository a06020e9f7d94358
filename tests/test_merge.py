"""Several journals as one timeline: merge order, ties, filters, follow, and the CLI on several journals."""

from __future__ import annotations

import heapq
import json
import os
import subprocess
import sys
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kftest import KFTOOLS, ROOT, SAMPLES_DIR, copy_journal, run_cli

import kftools
from kftools import Reader, Writer
from kftools.journal.merge import MergedReader, open_many

# a journal: a list of (gen_time step, symbol); steps may be negative (a clock that stepped back)
journal_st = st.lists(st.tuples(st.integers(-3, 6), st.sampled_from(["A", "B", "C"])), max_size=60)


def write(path, rows, page=4096, base=1_000):
    """Write ``rows`` of (step, symbol); frame k's last_price is k so it can be told apart."""
    t = base
    out = []
    with Writer(path, page_size=page) as w:
        for k, (step, sym) in enumerate(rows):
            t = max(1, t + step)
            w.write_ticker(sym, float(k), gen_time=t)
            out.append((t, sym, k))
    return out


def reference(journals: list[list[tuple]], types=None, symbols=None, start=None, end=None):
    """What a heap merge of each journal's own sequence gives (heapq.merge is stable across inputs)."""
    tagged = [[(t, j, k, s) for (t, s, k) in rows] for j, rows in enumerate(journals)]
    merged = list(heapq.merge(*tagged, key=lambda x: x[0]))
    return [(t, j, k) for (t, j, k, s) in merged
            if (symbols is None or s in symbols) and (start is None or t >= start) and (end is None or t <= end)]


def got(frames, paths):
    return [(f.gen_time, paths.index(f.journal), int(f.last_price)) for f in frames]


@settings(max_examples=40, deadline=None)
@given(journals=st.lists(journal_st, min_size=1, max_size=4), batch=st.sampled_from([1, 3, 64, 65536]),
       symbols=st.sampled_from([None, ["A"], ["B", "C"]]), window=st.sampled_from([None, (1005, 1030)]))
def test_merge_is_a_stable_time_merge(journals, batch, symbols, window):
    with tempfile.TemporaryDirectory() as d:
        paths = [os.path.join(d, f"j{i}.dat") for i in range(len(journals))]
        written = [write(p, rows) for p, rows in zip(paths, journals, strict=True)]
        start, end = window or (None, None)
        want = reference(written, symbols=symbols, start=start, end=end)
        with open_many(paths) as m:
            filters = {"symbols": symbols, "start_time": start, "end_time": end}
            assert got(m.frames(**filters), paths) == want
            # batches: same order, the numpy columns agree with the frames
            rows = []
            for b in m.batches(batch, **filters):
                fr = b.frames()
                assert [f.gen_time for f in fr] == b.headers["gen_time"].tolist()
                assert [paths.index(f.journal) for f in fr] == b.journal.tolist()
                assert [f.offset for f in fr] == b.offsets.tolist()
                assert [f.last_price for f in fr] == b.payload(kftools.MsgType.TICKER)["last_price"].tolist()
                rows += got(fr, paths)
            assert rows == want
            idx = m.read_batch(**filters)
            assert list(zip(idx["gen_time"].tolist(), idx["journal"].tolist(), strict=True)) == [w[:2] for w in want]
            assert got(m.last(5, **filters), paths) == want[-5:]
            # a follower that has every frame already releases the same order
            assert got(m.follow(idle_timeout=0.05, symbols=symbols), paths) == reference(written, symbols=symbols)


def test_ties_go_to_the_journal_given_first_then_position(tmp_path):
    a, b = str(tmp_path / "a.dat"), str(tmp_path / "b.dat")
    write(a, [(0, "A")] * 3)
    write(b, [(0, "A")] * 2)
    with open_many([a, b]) as m:
        assert [(f.journal, int(f.last_price)) for f in m] == [(a, 0), (a, 1), (a, 2), (b, 0), (b, 1)]
    with open_many([b, a]) as m:
        assert [(f.journal, int(f.last_price)) for f in m] == [(b, 0), (b, 1), (a, 0), (a, 1), (a, 2)]


def test_a_folder_reads_its_journals_and_skips_what_is_not_one(tmp_path):
    write(str(tmp_path / "md.dat"), [(1, "A")] * 5, page=4096)
    write(str(tmp_path / "orders.dat"), [(2, "B")] * 3)
    (tmp_path / "notes.txt").write_text("not a journal, but long enough to have a header of sixty-four bytes " * 2)
    (tmp_path / "junk.dat").write_text("named like a journal, but long enough to have a header of 64 bytes " * 2)
    with open_many(tmp_path) as m:
        assert [os.path.basename(p) for p in m.journals] == ["md.dat", "orders.dat"]
        # a file plainly not a journal is not listed; one named like a journal is skipped, saying why
        assert len(m.skipped) == 1 and "junk.dat" in m.skipped[0]
        assert m.count() == 8
    with pytest.raises(kftools.NotAJournal):
        open_many([tmp_path / "notes.txt", tmp_path / "md.dat"])  # named explicitly: an error


def test_damaged_journal_ends_at_its_damage_the_others_are_read(tmp_path):
    clean = copy_journal(os.path.join(SAMPLES_DIR, "clean.dat"), str(tmp_path))
    damaged = copy_journal(os.path.join(SAMPLES_DIR, "damaged.dat"), str(tmp_path))
    with open_many([clean, damaged]) as m:
        n = m.count()
        assert m.damage is not None and m.damage.path == damaged
    assert n == Reader(clean).count() + sum(1 for _ in Reader(damaged))


def test_follow_holds_frames_back_until_every_journal_is_past_them(tmp_path):
    a, b = str(tmp_path / "a.dat"), str(tmp_path / "b.dat")
    wa, wb = Writer(a, page_size=4096), Writer(b, page_size=4096)
    try:
        wa.write_ticker("A", 0.0, gen_time=10)
        wa.write_ticker("A", 1.0, gen_time=30)
        wb.write_ticker("B", 0.0, gen_time=20)
        m = MergedReader([a, b])
        g = m.follow_batches(hold=float("inf"), wait="sleep")
        assert next(g).headers["gen_time"].tolist() == [10, 20]  # 30 waits: b may still write 25
        wb.write_ticker("B", 1.0, gen_time=25)
        wb.write_ticker("B", 2.0, gen_time=40)
        assert next(g).headers["gen_time"].tolist() == [25, 30]  # 40 waits for a
        wa.close()  # a writer that closes its journal holds nobody back
        assert next(g).headers["gen_time"].tolist() == [40]
        assert m.late == 0
        g.close()
        m.close()
    finally:
        wa.close()
        wb.close()


def test_follow_releases_past_a_silent_journal_after_hold_and_counts_late_frames(tmp_path):
    a, b = str(tmp_path / "a.dat"), str(tmp_path / "b.dat")
    with Writer(a, page_size=4096) as wa, Writer(b, page_size=4096) as wb:
        wa.write_ticker("A", 0.0, gen_time=100)
        m = MergedReader([a, b])
        g = m.follow_batches(hold=0.05, wait="sleep")
        first = next(g)  # b has been silent for 50 ms: a's frame goes out without it
        assert first.headers["gen_time"].tolist() == [100]
        wb.write_ticker("B", 0.0, gen_time=50)  # earlier than what went out: released at once, counted
        while True:
            b2 = next(g)
            if len(b2):
                break
        assert b2.headers["gen_time"].tolist() == [50] and b2.frames()[0].journal == b
        assert m.late == 1
        g.close()
        m.close()


WRITER = r"""
import sys, kftools
path, n, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with kftools.Writer(path, page_size=4096) as w:
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(n):
        w.write_ticker("S", float(i), gen_time=1_000 + 2 * i + off)
"""


def test_cat_follow_merges_live_writers_in_order(tmp_path):
    n = 2000
    a, b = tmp_path / "a.dat", tmp_path / "b.dat"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(p), str(n), str(off)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for p, off in ((a, 0), (b, 1))]
    cat = subprocess.Popen([*KFTOOLS, "cat", "-f", "-F", "jsonl", "--hold", "5", str(a), str(b)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        for w in writers:
            assert w.stdout.readline() == "ready\n"
            w.stdin.write("go\n")
            w.stdin.flush()
        lines = [json.loads(cat.stdout.readline()) for _ in range(2 * n)]
        assert [x["gen_time"] for x in lines] == list(range(1000, 1000 + 2 * n))
        assert [x["journal"] for x in lines[:2]] == [str(a), str(b)]
    finally:
        cat.terminate()
        for w in writers:
            w.kill()
            w.wait()
    cat.wait(timeout=30)


def test_cli_cat_several_journals_text_jsonl_csv(tmp_path):
    a = write(str(tmp_path / "a.dat"), [(2, "A")] * 3)
    b = write(str(tmp_path / "b.dat"), [(3, "B")] * 2)
    assert a and b
    r = run_cli("cat", tmp_path / "a.dat", tmp_path / "b.dat")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split()[1] for ln in lines] == [str(tmp_path / p) for p in ("a.dat", "b.dat", "a.dat", "a.dat",
                                                                           "b.dat")]
    r = run_cli("cat", "-F", "jsonl", tmp_path)  # a folder
    assert [json.loads(x)["journal"] for x in r.stdout.splitlines()] == [os.path.join(str(tmp_path), p) for p in
                                                                        ("a.dat", "b.dat", "a.dat", "a.dat", "b.dat")]
    r = run_cli("cat", "-F", "csv", "-n", "2", tmp_path / "b.dat", tmp_path / "a.dat")
    rows = r.stdout.splitlines()
    assert rows[0].startswith("journal,type,msg_type,gen_time")
    # gen_time 1006 in both: the journal given first (b) goes first
    assert [x.split(",")[0] for x in rows[1:]] == [str(tmp_path / "b.dat"), str(tmp_path / "a.dat")]
    # one journal: as before, no journal column
    r = run_cli("cat", "-F", "jsonl", tmp_path / "a.dat")
    assert "journal" not in json.loads(r.stdout.splitlines()[0])


def test_a_folder_lists_journals_not_the_other_files_in_it(tmp_path):
    """Notes, exports and scripts beside the journals are not journals; a *.dat that is not one is reported."""
    write(str(tmp_path / "md.dat"), [(1, "A")] * 200, page=4096)
    copy_journal(os.path.join(SAMPLES_DIR, "engine.dat"), str(tmp_path))
    os.rename(tmp_path / "engine.dat", tmp_path / "engine-journal")  # a journal by its header, whatever its name
    (tmp_path / "notes.txt").write_text("run 42\n")
    (tmp_path / "out.parquet").write_bytes(b"PAR1" + bytes(range(1, 101)) + b"PAR1")
    for cmd in ("info", "verify"):
        r = run_cli(cmd, "--json", tmp_path)
        assert r.returncode == 0, r.stderr
        assert [os.path.basename(j["path"]) for j in json.loads(r.stdout)["journals"]] == ["engine-journal", "md.dat"]
    r = run_cli("archive", tmp_path, "--older-than", "0s")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    (tmp_path / "junk.dat").write_bytes(b"x" * 100)
    r = run_cli("verify", tmp_path)
    assert r.returncode == 2 and "junk.dat" in r.stdout and "junk.dat" in r.stderr


def test_cli_info_and_verify_on_a_folder(tmp_path):
    for name in ("clean.dat", "engine.dat"):
        copy_journal(os.path.join(SAMPLES_DIR, name), str(tmp_path))
    r = run_cli("verify", tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert len(out) == 4 and out[-1].startswith("total: 2 journals") and "600" in out[-1]
    r = run_cli("info", "--json", tmp_path)
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["total"]["frames"] == 600 and [j["frames"] for j in d["journals"]] == [400, 200]
    copy_journal(os.path.join(SAMPLES_DIR, "damaged.dat"), str(tmp_path))
    for cmd in ("info", "verify"):
        r = run_cli(cmd, tmp_path)
        assert r.returncode == 3, (cmd, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        line = next(x for x in r.stdout.splitlines() if "damaged.dat" in x)
        assert "damaged" in line.split("damaged.dat", 1)[1]
        assert "1 damaged" in r.stdout.splitlines()[-1]
    (tmp_path / "junk.bin").write_bytes(b"x" * 100)
    r = run_cli("verify", "--json", tmp_path / "junk.bin", tmp_path / "clean.dat")
    d = json.loads(r.stdout)
    assert r.returncode == 2 and d["journals"][0]["status"] == 2 and d["total"]["unreadable"] == 1
    r = run_cli("info", tmp_path / "clean.dat", tmp_path / "missing.dat")  # the others listed, an error line each
    assert r.returncode == 2 and "clean.dat" in r.stdout and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and r.stderr.startswith("kftools: error: ")
    assert "missing.dat" in r.stderr


@pytest.mark.parametrize("speed", [None, 50.0])
def test_replay_of_several_journals_is_one_merged_output(tmp_path, speed):
    a, b = str(tmp_path / "md.dat"), str(tmp_path / "orders.dat")
    write(a, [(1_000_000, "A")] * 40, base=10**9)  # a frame every ms
    write(b, [(3_000_000, "B")] * 10, base=10**9 + 500_000)
    args = ["replay", a, b, "-o", tmp_path / "out.dat", "--json"]
    r = run_cli(*(args + (["--max"] if speed is None else ["--speed", speed])))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["frames"] == 50
    with open_many([a, b]) as m:
        want = [(f.msg_type, f.gen_time, f.symbol, f.last_price) for f in m]
    with Reader(tmp_path / "out.dat") as out:
        got = [(f.msg_type, f.trigger_time, f.symbol, f.last_price) for f in out]
    assert got == want  # original times as trigger_time, in merged order
    r = run_cli("replay", a, b)
    assert r.returncode == 2 and "needs -o" in r.stderr


def test_merged_filters_take_what_reader_takes(tmp_path):
    """Type names, comma lists and text times, as Reader (and the CLI) take them: the one FrameFilter."""
    a, b = str(tmp_path / "a.dat"), str(tmp_path / "b.dat")
    base = 1_700_000_000_000_000_000
    with Writer(a, page_size=4096) as w:
        for k in range(6):
            w.write_ticker("A", float(k), gen_time=base + k * 1_000_000_000)
    with Writer(b, page_size=4096) as w:
        for k in range(6):
            w.write_trade("B", trade_id=k, order_id=0, side=0, price=1.0, volume=1.0,
                          gen_time=base + k * 1_000_000_000 + 500_000_000)
    with open_many([a, b]) as m, Reader(a) as r:
        tickers = [f.gen_time for f in m.frames(types="Ticker")]
        assert tickers == [f.gen_time for f in r.frames(types="Ticker")] == [f.gen_time for f in m.frames(types=[1])]
        assert len(list(m.frames(types="Ticker,Trade"))) == 12
        later = [f.gen_time for f in m.frames(start_time="+2s", end_time="+3s")]
        assert later == [base + 2_000_000_000, base + 2_500_000_000, base + 3_000_000_000]
        last = [f.gen_time for f in m.frames(start_time="-1s")]
        assert last == [base + 4_500_000_000, base + 5_000_000_000, base + 5_500_000_000]
        assert [f.gen_time for f in m.follow(start="+5s", idle_timeout=0)] == [base + 5_000_000_000, base + 5_500_000_000]
        with pytest.raises(kftools.UnknownType):
            list(m.frames(types="NoSuchType"))


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.lists(st.integers(0, 4), max_size=40), min_size=1, max_size=9))
def test_the_c_merge_of_parts_is_the_stable_sort(parts):
    """The C merge (one pass over runs) and its numpy twin (a stable argsort) give the same order and headers."""
    import numpy as np

    from kftools.journal import merge
    from kftools.journal.frames import HEADER_DTYPE

    keys = [np.cumsum(np.asarray(steps, np.int64)) for steps in parts]  # each non-decreasing, many ties
    headers = []
    for i, k in enumerate(keys):
        h = np.zeros(len(k), HEADER_DTYPE)
        h["gen_time"], h["source"], h["length"] = k, i, np.arange(len(k))
        headers.append(h)
    want = np.argsort(np.concatenate(keys), kind="stable")
    saved = merge._merge_c
    try:
        results = []
        for impl in ([saved] if saved is not None else []) + [None]:
            merge._merge_c = impl
            results.append(merge.merge_parts(keys, headers))
    finally:
        merge._merge_c = saved
    for order, merged in results:
        assert np.array_equal(order, want)
        assert np.array_equal(merged, np.concatenate(headers)[want])


@pytest.mark.parametrize("command", [["cat", "-f", "-n", "2"], ["tail", "--plain", "-n", "2"]], ids=" ".join)
def test_following_several_with_n_keeps_following_past_a_damaged_one(tmp_path, command):
    """One old damaged journal: `cat -f -n N` and `tail --plain` follow the others, as `cat -f` does."""
    import signal

    damaged = copy_journal(os.path.join(SAMPLES_DIR, "damaged.dat"), str(tmp_path))
    live = str(tmp_path / "live.dat")
    with Writer(live) as w:
        w.write_ticker("LIVE", 1.0)
    proc = subprocess.Popen([*KFTOOLS, *command, "--hold", "0", damaged, live], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline() and proc.stdout.readline()  # the last 2 frames
        with Writer(live, append=True) as w:
            w.write_ticker("LATER", 2.0)
        line = proc.stdout.readline()  # exit 3 at once before: nothing more was printed
        assert "LATER" in line, (line, proc.poll())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 3
        err = proc.stderr.read()
        assert "Traceback" not in err and f"{damaged}: page 0" in err
    finally:
        proc.kill()
        proc.wait()
