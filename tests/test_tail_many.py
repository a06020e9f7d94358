"""kftools tail of several journals: one timeline merged by gen_time, a journal column, following them all."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kftest import KFTOOLS, ROOT, SAMPLES_DIR, copy_journal
from rich.console import Console
from test_tail import WAIT, until

from kftools import open_many
from kftools.journal import MsgType, Writer
from kftools.journal.registry import DEFAULT_REGISTRY
from kftools.tui.app import TailApp
from kftools.tui.merged import MergedIndex, _Column, short_names
from kftools.tui.widgets import FrameTable, frame_detail

SIZE = (140, 40)
BASE = 1_764_000_000_000_000_000  # 2025-11-24, a fixed origin: gen_times are chosen, not read from the clock
CLEAN = os.path.join(SAMPLES_DIR, "clean.dat")
MULTIPAGE = os.path.join(SAMPLES_DIR, "multipage.dat")


def write(path: str, times, symbol: str, *, orders_every: int = 0, page_size: int = 4096, writer=None) -> None:
    """Tickers of ``symbol`` at these gen_times (every ``orders_every``-th an Order)."""
    w = writer or Writer(path, page_size=page_size)
    for i, t in enumerate(times):
        if orders_every and i % orders_every == orders_every - 1:
            w.write_order(symbol, i, i & 1, 0, 100.0 + i, 1.0, 0.0, f"{symbol}-{i}", gen_time=int(t))
        else:
            w.write_ticker(symbol, 100.0 + i, 99.5 + i, 100.5 + i, float(i), gen_time=int(t))
    if writer is None:
        w.close()


def three_journals(tmp_path) -> list[str]:
    """Two journals both named md.dat (in a/ and b/) and orders.dat, gen_times interleaved, with ties."""
    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    paths = [str(tmp_path / "a" / "md.dat"), str(tmp_path / "b" / "md.dat"), str(tmp_path / "orders.dat")]
    write(paths[0], BASE + 3 * np.arange(300), "AAPL")
    write(paths[1], BASE + 3 * np.arange(300) + 1, "MSFT")
    write(paths[2], BASE + 10 * np.arange(90), "NVDA", orders_every=3)  # every 3rd ties with a/md.dat
    return paths


def merged_rows(paths: list[str]) -> list[tuple[str, int, int]]:
    """(journal, page, offset) of every frame in the order open_many gives: the order the view must show."""
    with open_many(paths) as m:
        return [(f.journal, f.page_index, f.offset) for f in m]


def shown_rows(app: TailApp, start: int = 0, stop: int | None = None) -> list[tuple[str, int, int]]:
    stop = app.index.count if stop is None else stop
    frames = app.index.frames(app.reader, start, stop)
    return [(f.journal, f.page_index, f.offset) for f in frames]


def run(coro):
    return asyncio.run(coro)


# -- the index and names -------------------------------------------------------------------
def test_short_names_are_the_shortest_distinguishing_suffix():
    assert short_names(["/x/md.dat", "/x/orders.dat"]) == ["md.dat", "orders.dat"]
    assert short_names(["/r/a/md.dat", "/r/b/md.dat", "/r/orders.dat"]) == ["a/md.dat", "b/md.dat", "orders.dat"]
    assert short_names(["/a/md.dat", "/b/a/md.dat"]) == ["/a/md.dat", "b/a/md.dat"]
    assert short_names(["md.dat"]) == ["md.dat"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 70_000), max_size=30), min_size=1, max_size=6),
       st.integers(1, 16), st.integers(0, 200), st.integers(0, 200))
def test_chunked_column_keeps_every_value_and_widens_only_when_needed(chunks, chunk, lo, hi):
    from kftools.tui import merged

    saved, merged._CHUNK = merged._CHUNK, chunk  # small chunks: values cross chunk boundaries
    try:
        col = _Column(np.uint8)
        for c in chunks:
            col.extend(np.array(c, dtype=np.uint32))
        flat = [v for c in chunks for v in c]
        assert col.view().tolist() == flat
        assert col.slice(lo, hi).tolist() == flat[lo:hi]
        top = max(flat, default=0)
        assert col.dtype == (np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)
        assert col.nbytes <= (len(flat) + chunk) * col.dtype.itemsize  # at most one chunk of slack
    finally:
        merged._CHUNK = saved


@pytest.mark.parametrize("types,symbols", [(None, None), ([int(MsgType.ORDER)], None), (None, ["MSFT", "NVDA"])])
def test_index_rows_match_open_many(tmp_path, types, symbols):
    paths = three_journals(tmp_path)
    with open_many(paths) as m:
        expected = [(f.journal, f.page_index, f.offset) for f in m.frames(types=types, symbols=symbols)]
        from kftools.tui.index import RowFilter

        idx = MergedIndex(RowFilter(types, symbols))
        idx.set_journals(m.journals)
        for b in m.batches(batch_size=37):
            idx.add(b)
        assert idx.total == 690 and idx.count == len(expected)
        got = [(f.journal, f.page_index, f.offset) for f in idx.frames(m, 0, idx.count)]
        assert got == expected
        names = [idx.journals[j].name for j in idx.journal_of(0, idx.count)]
        assert names == [j for j, _, _ in expected]
        # a few bytes a row: journal (1), page (2) and offset (4), and at most a chunk of slack
        assert idx.nbytes == 7 * 65536


# -- the live view -----------------------------------------------------------------------------
def test_three_journals_in_merged_order_with_their_journal(tmp_path):
    paths = three_journals(tmp_path)
    expected = merged_rows(paths)
    short = dict(zip(paths, ["a/md.dat", "b/md.dat", "orders.dat"], strict=True))

    async def go():
        app = TailApp(paths, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == len(expected), what="all rows")
            assert shown_rows(app) == expected
            assert app._journal_names(0, len(expected)) == [short[j] for j, _, _ in expected]
            # the first rows interleave all three journals; a tie goes to the journal given first
            assert app._journal_names(0, 4) == ["a/md.dat", "orders.dat", "b/md.dat", "a/md.dat"]
            assert "3 journals merged by gen_time" in app.header_text and "690 frames" in app.header_text
            for name in short.values():
                assert name in app.header_text  # a header line per journal
            assert "exited" in app.header_text
            # the detail pane names the journal of the selected row
            await pilot.press("home", "down", "enter")
            await until(pilot, lambda: app.detail_frame is not None, what="detail")
            assert app.detail_frame.journal == paths[2]
            assert app.detail_journal == paths[2]
            console = Console(width=200, record=True, file=io.StringIO())
            console.print(frame_detail(app.detail_frame, None, 200, app.detail_journal))
            assert f"journal          {paths[2]}" in console.export_text()

    run(go())


def test_a_live_writer_shows_up_in_order(tmp_path):
    a, b = str(tmp_path / "md.dat"), str(tmp_path / "orders.dat")
    write(a, BASE + 2 * np.arange(100), "AAPL")
    write(b, BASE + 2 * np.arange(100) + 1, "NVDA")

    async def go():
        # both writers are back before the view starts; hold forever: nothing may come out of order
        wa, wb = Writer(a, page_size=4096, append=True), Writer(b, page_size=4096, append=True)
        app = TailApp([a, b], DEFAULT_REGISTRY, hold=float("inf"))
        try:
            async with app.run_test(size=SIZE) as pilot:
                table = app.query_one(FrameTable)
                # orders.dat's last frame (t=199) waits for md.dat to show a frame as late: the header says so
                await until(pilot, lambda: table.count == 199, what="history")
                await until(pilot, lambda: "orders.dat  ● alive" in app.header_text
                            and "held back: waits for md.dat" in app.header_text, what="held back")

                def feed():
                    for k in range(300):  # the two writers take turns; frames cross page boundaries
                        t = BASE + 1_000 + 2 * k
                        write(b if k % 3 else a, [t], "X", writer=wb if k % 3 else wa)
                    wa.close()
                    wb.close()

                th = threading.Thread(target=feed)
                th.start()
                await until(pilot, lambda: table.count == 500, what="live rows")
                th.join()
                assert shown_rows(app) == merged_rows([a, b])
                assert table.following and table.cursor == 499
                assert app.watcher is not None
        finally:
            wa.close()
            wb.close()

    run(go())


def test_filters_search_and_goto_work_across_journals(tmp_path):
    paths = three_journals(tmp_path)
    with open_many(paths) as m:
        frames = list(m)
        n_orders = sum(f.msg_type == MsgType.ORDER for f in frames)
        n_msft_nvda = sum(f.fields.get("symbol") in ("MSFT", "NVDA") for f in frames)
        times = [f.gen_time for f in frames]

    async def go():
        app = TailApp(paths, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == 690, what="load")
            # t: the first type (Ticker) of all three journals
            await pilot.press("t")
            await until(pilot, lambda: app.caught_up and app.filter.types == [int(MsgType.TICKER)]
                        and table.count == 690 - n_orders, what="tickers")
            assert {f.type_name for f in app.index.frames(app.reader, 0, table.count)} == {"Ticker"}
            assert set(app._journal_names(0, table.count)) == {"a/md.dat", "b/md.dat", "orders.dat"}
            await pilot.press("t")  # Order: one journal only
            await until(pilot, lambda: app.caught_up and table.count == n_orders, what="orders")
            assert set(app._journal_names(0, table.count)) == {"orders.dat"}
            while app.filter.types is not None:
                await pilot.press("t")
            await until(pilot, lambda: app.caught_up and table.count == 690, what="all types")
            # symbols from two journals, still merged
            await pilot.press("s", *"MSFT,NVDA", "enter")
            await until(pilot, lambda: app.caught_up and table.count == n_msft_nvda, what="MSFT,NVDA")
            assert set(app._journal_names(0, table.count)) == {"b/md.dat", "orders.dat"}
            assert "filter: symbol=MSFT,NVDA" in app.status_text
            await pilot.press("s", "enter")
            await until(pilot, lambda: app.caught_up and table.count == 690, what="unfiltered")
            # search reaches rows of another journal, by field or by journal name
            await pilot.press("home", "slash", *"NVDA-2", "enter")
            first = next(i for i, f in enumerate(frames) if f.fields.get("client_order_id") == "NVDA-2")
            await until(pilot, lambda: table.cursor == first, what="NVDA-2")
            await pilot.press("home", "slash", *"b/md.dat", "enter")
            await until(pilot, lambda: table.cursor == 2, what="first row of b/md.dat")
            # go to a time: the first row at or after it, whichever journal it is in
            await pilot.press("g", *str(times[400] - 1), "enter")
            want = times.index(next(t for t in times if t >= times[400] - 1))
            await until(pilot, lambda: table.cursor == want and not table.following, what="goto")

    run(go())


def test_damaged_journal_drops_out_and_the_others_go_on(tmp_path):
    damaged = os.path.join(SAMPLES_DIR, "damaged.dat")
    with open_many([CLEAN, damaged]) as m:
        n = sum(1 for _ in m)

    async def go():
        app = TailApp([CLEAN, damaged], DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: "DAMAGED" in app.header_text, what="damage")
            await until(pilot, lambda: table.count == n, what="every valid frame")
            assert "the others go on" in app.header_text

    run(go())


def test_folder_shows_its_journals(tmp_path):
    paths = three_journals(tmp_path)
    with open_many([tmp_path]) as m:  # the folder holds orders.dat only (a/ and b/ are not looked into)
        n = sum(1 for _ in m)
    write(str(tmp_path / "fills.dat"), BASE + 7 * np.arange(50) + 5, "TSLA")
    expected = merged_rows([str(tmp_path / "fills.dat"), paths[2]])  # a folder's journals go by name

    async def go():
        app = TailApp(str(tmp_path), DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == n + 50, what="folder")
            assert shown_rows(app) == expected
            assert set(app._journal_names(0, table.count)) == {"fills.dat", "orders.dat"}
            assert str(tmp_path) in app.header_text

    run(go())


# -- the command line --------------------------------------------------------------------------
def _in_a_terminal(*args: str) -> subprocess.CompletedProcess:
    """Run ``kftools ARGS`` with a terminal on stdin and stdout (so tail means the live view), stderr captured."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*KFTOOLS, *args], stdin=slave, stdout=slave, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, env={**os.environ, "TERM": "xterm-256color"})
        os.close(slave)
        slave = -1
        _, err = proc.communicate(timeout=WAIT)
        return subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_missing_journal_is_one_error_line_before_the_screen_opens(tmp_path):
    missing = str(tmp_path / "nope.dat")
    res = _in_a_terminal("tail", CLEAN, missing)
    assert res.returncode == 2
    assert res.stderr == f"kftools: error: {missing}: no such journal\n"


def test_bad_hold_is_refused(tmp_path):
    res = _in_a_terminal("tail", CLEAN, MULTIPAGE, "--hold", "-1")
    assert res.returncode == 2 and res.stderr == "kftools: error: --hold must be >= 0\n"


# -- snapshots -----------------------------------------------------------------------------------
def snapshot_app(tmp_path) -> TailApp:
    """Two copies of the clean sample (fixed bytes, so the writers' pids are too): every gen_time ties, and the
    rows alternate between the journals in the order given, to the bottom."""
    paths = [copy_journal(CLEAN, str(tmp_path), "md.dat"), copy_journal(CLEAN, str(tmp_path), "orders.dat")]
    with open_many(paths) as m:
        newest = m.last(1)[0].gen_time
    return TailApp(paths, DEFAULT_REGISTRY, now_ns=newest + 1_500_000, live_stats=False)


async def _loaded(pilot):
    await until(pilot, lambda: pilot.app.caught_up and pilot.app.query_one(FrameTable).count == 800, what="load")
    await pilot.pause(0.3)


def test_snapshot_merged(snap_compare, tmp_path):
    assert snap_compare(snapshot_app(tmp_path), terminal_size=SIZE, run_before=_loaded)


def test_snapshot_merged_narrow(snap_compare, tmp_path):
    """80x24: the journal column stays, less important columns go whole."""
    assert snap_compare(snapshot_app(tmp_path), terminal_size=(80, 24), run_before=_loaded)
