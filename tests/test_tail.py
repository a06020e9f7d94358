"""kftools tail: the index, the Textual view driven by the pilot, --plain, snapshots."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from kftest import KFTOOLS, ROOT, SAMPLES_DIR, copy_journal, run_cli

from kftools.journal import MsgType, Reader, Writer
from kftools.journal.registry import DEFAULT_REGISTRY
from kftools.tui.app import TailApp, format_lag
from kftools.tui.index import JournalIndex, RowFilter
from kftools.tui.widgets import DetailPane, FrameTable

MULTIPAGE = os.path.join(SAMPLES_DIR, "multipage.dat")
CLEAN = os.path.join(SAMPLES_DIR, "clean.dat")
SIZE = (140, 40)
WAIT = 30.0  # generous: the machine is shared and noisy


def run(coro):
    return asyncio.run(coro)


async def until(pilot, cond, timeout: float = WAIT, what: str = "condition"):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}; header: {pilot.app.header_text!r}")
        await pilot.pause(0.05)


def write_frames(path: str, n: int, start: int = 0, page_size: int = 8192, symbol_of=None) -> None:
    with Writer(path, page_size=page_size, append=True) as w:
        for i in range(start, start + n):
            sym = symbol_of(i) if symbol_of else ("AAPL", "MSFT")[i % 2]
            if i % 5 == 4:
                w.write_order(sym, i, i & 1, 0, 100.0 + i, 1.0, 0.0, f"c-{i}")
            else:
                w.write_ticker(sym, 100.0 + i, 99.9 + i, 100.1 + i, float(i))


# -- the index -----------------------------------------------------------------------
@pytest.mark.parametrize("types,symbols", [(None, None), ([int(MsgType.ORDER)], None), (None, ["AAPL"])])
def test_index_rows_match_reader(types, symbols):
    with Reader(MULTIPAGE) as r:
        expected = [(f.page_index, f.offset) for f in r.frames(types=types, symbols=symbols)]
        idx = JournalIndex(RowFilter(types, symbols))
        for b in r.batches(batch_size=37):
            idx.add(b)
    assert idx.count == len(expected) and idx.total == 1200
    with Reader(MULTIPAGE) as r:
        every = list(r)
        kept = list(r.frames(types=types, symbols=symbols))
    # per page: the time range of the rows kept, the end of the last frame, the types; the newest frame's time
    for e in idx.pages:
        mine = [f for f in kept if f.page_index == e.index]
        assert (e.first_time, e.last_time) == ((mine[0].gen_time, mine[-1].gen_time) if mine else (None, None))
        page = [f for f in every if f.page_index == e.index]
        assert e.end == page[-1].offset + 32 + page[-1].length
    assert idx.newest_time == every[-1].gen_time and idx.types_seen == {f.msg_type for f in every}
    with Reader(MULTIPAGE) as view:
        assert idx.locate(view, 0, idx.count) == expected
        # sealed pages are rescanned on demand: any window, in any order
        for a in (len(expected) - 7, 3, len(expected) // 2):
            assert [(f.page_index, f.offset) for f in idx.frames(view, a, a + 5)] == expected[a : a + 5]


def test_index_row_at_time():
    with Reader(MULTIPAGE) as r:
        frames = [f.gen_time for f in r]
        idx = JournalIndex()
        for b in r.batches():
            idx.add(b)
        assert idx.row_at_time(r, frames[0]) == 0
        assert idx.row_at_time(r, frames[700]) == 700
        assert idx.row_at_time(r, frames[-1] + 1) == len(frames)


def test_format_lag():
    assert format_lag(500) == "0 µs" or format_lag(500).endswith("µs")
    assert format_lag(2_500_000) == "2.5 ms"
    assert format_lag(3 * 3600 * 10**9) == "3h 00m"


# -- the live view ---------------------------------------------------------------------
def test_rows_appear_follow_and_pause(tmp_path):
    path = str(tmp_path / "live.dat")
    write_frames(path, 100)

    async def go():
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: table.count == 100, what="100 rows")
            assert table.following and table.cursor == 99
            assert "100 frames" in app.header_text
            # a writer feeding the journal from a thread: rows keep appearing at the bottom
            t = threading.Thread(target=write_frames, args=(path, 400, 100))
            t.start()
            await until(pilot, lambda: table.count == 500, what="500 rows")
            t.join()
            assert table.cursor == 499
            # scrolling up pauses following and counts what arrives meanwhile
            await pilot.press("up", "up")
            assert not table.following and table.cursor == 497
            write_frames(path, 50, 500)
            await until(pilot, lambda: table.count == 550, what="550 rows")
            assert table.cursor == 497 and table.new_since_pause == 50
            await until(pilot, lambda: "+50 new" in app.status_text, what="paused status")
            await pilot.press("end")
            assert table.following and table.cursor == 549
            await pilot.press("home")
            assert table.cursor == 0 and table.top == 0 and not table.following
            await pilot.press("q")

    run(go())


def test_detail_pane_shows_selected_frame():
    with Reader(MULTIPAGE) as r:
        frames = list(r)
        target = frames[1195]
        expect = (target.page_index, target.offset, target.fields["symbol"], target.raw.hex()[:32])

    async def go():
        app = TailApp(MULTIPAGE, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: table.count == 1200 and app.caught_up, what="load")
            await pilot.press("up", "up", "up", "up", "enter")
            assert app.query_one(DetailPane).has_class("shown")
            await until(pilot, lambda: app.detail_frame is not None, what="detail")
            f = app.detail_frame
            assert (f.page_index, f.offset, f.fields["symbol"], f.raw.hex()[:32]) == expect
            await pilot.press("enter")
            assert not app.query_one(DetailPane).has_class("shown")

    run(go())


def test_filters_and_search():
    with Reader(MULTIPAGE) as r:
        frames = list(r)
    n_orders = sum(f.msg_type == MsgType.ORDER for f in frames)
    n_aapl = sum(f.fields.get("symbol") == "AAPL" for f in frames)

    async def go():
        app = TailApp(MULTIPAGE, DEFAULT_REGISTRY, types=[int(MsgType.ORDER)])
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == n_orders, what="orders only")
            assert app.index.total == 1200
            rows = app.index.frames(app.reader, 0, table.count)
            assert {f.type_name for f in rows} == {"Order"}
            # t cycles the type filter: Order -> Trade
            await pilot.press("t")
            await until(pilot, lambda: app.caught_up and app.filter.types == [int(MsgType.TRADE)], what="trade filter")
            await until(pilot, lambda: {f.type_name for f in app.index.frames(app.reader, 0, 50)} == {"Trade"},
                        what="trades")
            # s opens the symbol prompt
            # the journal holds no backtest type (CancelRequest, OrderUpdate, Fill): after Trade, back to all
            await pilot.press("t")
            await until(pilot, lambda: app.filter.types is None, what="all types")
            await pilot.press("s")
            await pilot.press(*"AAPL", "enter")
            await until(pilot, lambda: app.caught_up and app.filter.symbols == ["AAPL"] and table.count == n_aapl,
                        what="AAPL rows")
            # search finds the next matching row from the cursor
            await pilot.press("s", *["backspace"] * 4, "enter")
            await until(pilot, lambda: app.caught_up and table.count == 1200, what="unfiltered")
            await pilot.press("home", "slash", *"sell", "enter")
            first_sell = next(i for i, f in enumerate(frames) if f.fields.get("side") == 1)
            # wait for the app to have acted on the keys (it may still be processing them): the event, not a race
            await until(pilot, lambda: table.cursor == first_sell, what="first sell")
            hit = app.index.frames(app.reader, table.cursor, table.cursor + 1)[0]
            assert hit.fields["side"] == 1
            await pilot.press("n")
            await until(pilot, lambda: table.cursor > first_sell, what="next sell")
            # go to a time
            await pilot.press("g", *str(frames[600].gen_time), "enter")
            await until(pilot, lambda: table.cursor == 600 and not table.following, what="row 600")

    run(go())


def test_waits_for_journal_then_follows_across_pages(tmp_path):
    path = str(tmp_path / "later.dat")

    async def go():
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "waiting" in app.header_text, what="waiting")
            assert "no such journal" in app.header_text
            write_frames(path, 600, page_size=4096)  # many small pages: rollover while following
            table = app.query_one(FrameTable)
            await until(pilot, lambda: table.count == 600, what="600 rows")
            assert app.index.page_count > 5
            rows = app.index.frames(app.reader, 0, 600)
            assert [f.gen_time for f in rows] == sorted(f.gen_time for f in rows)
            await until(pilot, lambda: "exited cleanly" in app.header_text, what="exited state")
            # a writer that restarts and resumes: following continues
            write_frames(path, 100, 600, page_size=4096)
            await until(pilot, lambda: table.count == 700, what="700 rows")

    run(go())


WRITER = """
import sys, time
from kftools.journal import Writer
w = Writer(sys.argv[1], page_size=1 << 20, append=True)
for i in range(300):
    w.write_ticker("AAPL", 100.0 + i, 99.0, 101.0, 1.0)
print("ready", flush=True)
time.sleep(600)
"""


def test_crashed_writer_after_kill_9(tmp_path):
    path = str(tmp_path / "crash.dat")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "ready"

        async def go():
            app = TailApp(path, DEFAULT_REGISTRY)
            async with app.run_test(size=SIZE) as pilot:
                table = app.query_one(FrameTable)
                await until(pilot, lambda: table.count == 300 and "alive" in app.header_text, what="alive")
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=WAIT)
                await until(pilot, lambda: "gone without closing (crashed)" in app.header_text, what="crashed state")
                assert "300 valid frames" in app.header_text
                assert table.count == 300  # the committed frames stay on screen

        run(go())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# -- the command line --------------------------------------------------------------------
def test_plain_mode_prints_lines_and_follows(tmp_path):
    path = copy_journal(CLEAN, str(tmp_path))
    proc = subprocess.Popen([*KFTOOLS, "tail", "-n", "3", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert all(" Ticker " in x or " Order " in x or " Trade " in x for x in lines)
        with Reader(path) as r:
            last = r.last(1)[0].gen_time
        from kftools.timeparse import format_time

        assert lines[-1].startswith(format_time(last))
        write_frames(path, 1)  # the writer resumes: the new frame is printed
        assert "symbol=AAPL" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WAIT) == 130  # Ctrl-C, as a shell reports it
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_journal_one_line(tmp_path):
    res = run_cli("tail", "--plain", str(tmp_path))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "no journal in this folder" in res.stderr
    assert "Traceback" not in res.stderr


def test_tail_never_writes(tmp_path):
    path = copy_journal(MULTIPAGE, str(tmp_path))
    before = {p: open(tmp_path / p, "rb").read() for p in sorted(os.listdir(tmp_path))}

    async def go():
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.caught_up, what="load")
            await pilot.press("enter", "up", "t", "q")

    run(go())
    assert {p: open(tmp_path / p, "rb").read() for p in sorted(os.listdir(tmp_path))} == before


# -- snapshots (fixed size, frozen clock, masked path) -----------------------------------
def snapshot_app() -> TailApp:
    with Reader(MULTIPAGE) as r:
        newest = r.last(1)[0].gen_time
    return TailApp(MULTIPAGE, DEFAULT_REGISTRY, now_ns=newest + 1_500_000,
                   display_path="sample_journals/multipage.dat", live_stats=False)


async def _loaded(pilot):
    await until(pilot, lambda: pilot.app.caught_up and pilot.app.query_one(FrameTable).count == 1200, what="load")
    await pilot.pause(0.3)


def test_snapshot_main_screen(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=_loaded)


def test_snapshot_detail_pane(snap_compare):
    async def detail(pilot):
        await _loaded(pilot)
        await pilot.press("up", "up", "enter")
        await until(pilot, lambda: pilot.app.detail_frame is not None, what="detail")
        await pilot.pause(0.3)

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=detail)


def test_snapshot_narrow_terminal(snap_compare):
    """80x24: no sparkline panel, whole columns only, the header wraps by phrase."""
    assert snap_compare(snapshot_app(), terminal_size=(80, 24), run_before=_loaded)


def test_damaged_journal_keeps_valid_prefix():
    path = os.path.join(SAMPLES_DIR, "damaged.dat")
    with Reader(path) as r:
        valid = r.count()
        where = f"offset {r.damage.offset}"

    async def go():
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "DAMAGED" in app.header_text, what="damage shown")
            await until(pilot, lambda: app.query_one(FrameTable).count == valid, what="valid prefix")
            assert where in app.header_text

    run(go())


def test_user_types_and_unknown_payloads(schema_registry):
    with Reader(os.path.join(SAMPLES_DIR, "user_types.dat"), registry=schema_registry) as r:
        names = [f.type_name for f in r]

    async def go():
        app = TailApp(os.path.join(SAMPLES_DIR, "user_types.dat"), schema_registry)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == len(names), what="rows")
            shown = [f.type_name for f in app.index.frames(app.reader, 0, table.count)]
            assert shown == names and "Quote" in shown
            await pilot.press("enter")
            await until(pilot, lambda: app.detail_frame is not None, what="detail")
            assert app.detail_frame.raw == app.index.frames(app.reader, table.count - 1, table.count)[0].raw

    run(go())


def test_demo_without_a_terminal_prints_lines_and_exits_0(tmp_path):
    # the demo's folder goes under this test's own TMPDIR, so other sessions' demos never match the check below
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "kftools.demo"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         stdin=subprocess.DEVNULL, env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) > 5 and " Ticker " in res.stdout
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).stdout == b""  # the feed ended


# -- what the view shows is exact and fits (issue 12 §4) ------------------------------------
def _one_frame_app(tmp_path, write, size=SIZE, **kw):
    path = str(tmp_path / "one.dat")
    with Writer(path) as w:
        write(w)
    return path, TailApp(path, DEFAULT_REGISTRY, **kw)


def test_cells_and_detail_are_exact_with_bid_and_ask(tmp_path):
    from rich.console import Console

    from kftools.tui.widgets import COLUMNS, frame_cells, frame_detail

    path = str(tmp_path / "px.dat")
    with Writer(path) as w:
        w.write_ticker("BTC", 98765.43, 98765.43, 98765.44, 1_234_567.0)
        w.write_order("BTC", 7, 1, 1, 98765.44, 0.1, 0.0, "c-7")
    with Reader(path) as r:
        ticker, order = list(r)
        cells = dict(zip([c.title for c in COLUMNS], [str(c) for c in frame_cells(ticker)], strict=True))
        assert (cells["price"], cells["bid"], cells["ask"], cells["size"]) == ("98765.43", "98765.43", "98765.44",
                                                                               "1234567.0")
        cells = dict(zip([c.title for c in COLUMNS], [str(c) for c in frame_cells(order)], strict=True))
        assert (cells["side"], cells["price"], cells["size"], cells["bid"]) == ("sell", "98765.44", "0.1", "")
        assert "order_type=market" in cells["more"]
        for width in (80, 140):
            console = Console(width=width, record=True, color_system=None)
            console.print(frame_detail(ticker, width=width))
            shown = console.export_text()
            assert "98765.44" in shown and "1234567.0" in shown and "e+06" not in shown
            assert "trigger_time     unset (0)" in shown  # not 1970-01-01
            assert all(len(line) <= width for line in shown.splitlines())


def test_price_sparkline_label_is_the_latest_price():
    import tempfile

    from kftools.tui.watcher import PriceSampler

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "p.dat")
        with Writer(path) as w:
            w.write_ticker("AAPL", 100.0)
            w.write_trade("AAPL", 1, 101.0, 1.0)
            w.write_ticker("AAPL", 102.0)  # a later ticker: it, not the trade, is the last price
            w.write_ticker("MSFT", 5.0)
        sampler = PriceSampler(DEFAULT_REGISTRY)
        with Reader(path) as r:
            batches = list(r.batches(batch_size=2))
            sampler.add(batches[0], 60)
            assert sampler.snapshot()["AAPL"][1] == 101.0
            # between samples (points=0) the last price still moves on
            sampler.add(batches[1], 0)
            snap = sampler.snapshot()
            assert snap["AAPL"][1] == 102.0 and snap["MSFT"][1] == 5.0
            one = list(r.batches())[0]
        fresh = PriceSampler(DEFAULT_REGISTRY)
        fresh.add(one, 60)
        assert fresh.snapshot()["AAPL"][1] == 102.0


def test_narrow_terminal_collapses_sparks_and_fits_columns():
    async def go():
        app = TailApp(MULTIPAGE, DEFAULT_REGISTRY)
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == 1200, what="load")
            from kftools.tui.widgets import SparkPanel

            assert not app.query_one(SparkPanel).display
            assert "bid" not in table.hidden and "ask" not in table.hidden  # hidden at 80 columns before
            frames = app.index.frames(app.reader, table.top, table.top + table.visible_rows)
            rendered = table.render()
            from rich.console import Console

            console = Console(width=table.size.width, record=True, color_system=None)
            console.print(rendered)
            text = console.export_text()
            assert all(len(line) <= 80 for line in text.splitlines())
            for f in frames:  # every shown price is whole, never cut with an ellipsis
                assert repr(f.fields["price" if "price" in f.fields else "last_price"]) in text
            assert "…" not in text
            await pilot.resize_terminal(160, 40)
            await until(pilot, lambda: app.query_one(SparkPanel).display, what="sparks back")

    run(go())


def test_finished_recording_has_no_lag_and_damage_is_whole():
    path = os.path.join(SAMPLES_DIR, "damaged.dat")
    with Reader(path) as r:
        r.count()
        damage = str(r.damage)

    async def go():
        from rich.console import Console

        from kftools.tui.widgets import HeaderBar

        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "DAMAGED" in app.header_text, what="damage shown")
            await until(pilot, lambda: "(indexing" not in app.header_text, what="indexing done")
            assert damage in app.header_text
            assert "exited cleanly" in app.header_text and "lag" not in app.header_text
            await pilot.pause(0.1)
            bar = app.query_one(HeaderBar)
            from rich.text import Text

            wrapped = Text(app.header_text).wrap(Console(), bar.content_size.width)
            assert bar.content_size.height == len(wrapped)  # every line shown, none cut
            assert app.header_text.endswith("showing the valid frames before it")

    run(go())


def test_prompts_open_empty_search_says_not_found_and_fast_keys_land():
    from textual import events

    async def go():
        app = TailApp(MULTIPAGE, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == 1200, what="load")
            # keys sent in one burst, as a fast typist or a paste does: none goes to the table
            for key, char in [("s", "s"), ("A", "A"), ("A", "A"), ("P", "P"), ("L", "L"), ("enter", "\r")]:
                app._driver.send_message(events.Key(key, char))
            await until(pilot, lambda: app.filter.symbols == ["AAPL"] and app.caught_up, what="AAPL filter")
            await pilot.press("s")
            assert app.query_one("#prompt").value == ""  # not pre-filled
            assert "AAPL" in app.query_one("#prompt").placeholder
            await pilot.press("escape")
            await pilot.press("slash", *"zzz", "enter")
            await until(pilot, lambda: "'zzz' not found" in app.status_text, what="not found message")
            await pilot.press("slash")
            assert app.query_one("#prompt").value == ""
            await pilot.press(*"AAPL", "enter")
            await until(pilot, lambda: "found 'AAPL'" in app.status_text, what="found message")

    run(go())


def test_tz_in_the_view(tmp_path):
    from kftools.timeparse import resolve_tz

    async def go():
        app = TailApp(MULTIPAGE, DEFAULT_REGISTRY, tz=resolve_tz("Asia/Tokyo"))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.caught_up and "newest" in app.header_text, what="load")
            assert "newest 2026-11-28T02:30:01.199000000+09:00" in app.header_text
            await pilot.press("g", *"02:30:00.600", "enter")
            assert app.table.cursor == 600

    run(go())


def test_lag_shown_while_a_writer_is_alive(tmp_path):
    path = str(tmp_path / "alive.dat")
    w = Writer(path, page_size=1 << 16)
    try:
        w.write_ticker("AAPL", 1.0)

        async def go():
            app = TailApp(path, DEFAULT_REGISTRY)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: "alive" in app.header_text and "lag" in app.header_text, what="lag")

        run(go())
    finally:
        w.close()


def test_tail_shows_a_kungfu_journal_by_location_with_decoded_rows():
    td = os.path.join(ROOT, "tests", "data", "kungfu", "kf_home", "runtime", "td", "sim", "acct1", "journal", "live")
    with Reader(td) as r:
        last = list(r)[-1]

    async def go():
        app = TailApp(td, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: table.count == 5001 and app.caught_up, what="load")
            assert "td/sim/acct1/live/00000000" in app.header_text and "page 2 of 2" in app.header_text
            rows = app.index.frames(app.reader, 5000, 5001)
            assert [(f.type_name, f.offset, f.fields["instrument_id"]) for f in rows] == [
                (last.type_name, last.offset, last.fields["instrument_id"])]

    run(go())


def test_the_spark_panel_takes_updates_before_it_is_mounted_and_after_it_is_removed():
    """The app's timer updates the panel on its own schedule; at start-up and shutdown that can be before the
    panel's children are mounted or after they were removed (a NoMatches that ended a run under load)."""
    from textual.app import App

    from kftools.tui.widgets import SparkPanel

    async def go():
        async with App().run_test(size=SIZE) as pilot:
            panel = SparkPanel(id="sparks")
            panel.update_fps([1.0, 2.0], 2.0)
            await pilot.app.mount(panel)
            await pilot.pause()
            panel.update_fps([3.0], 3.0)
            assert "3" in str(panel._fps_label.render())
            await panel.remove()
            panel.update_fps([4.0], 4.0)
            panel.update_prices({"AAPL": ([1.0, 2.0], 2.0)})

    run(go())


# -- issue 24 item 28 -----------------------------------------------------------------------------------------
def test_rate_counts_arrivals_not_reading_a_finished_journal():
    """Indexing what is there (at start, or again after a filter change) is not arrival: 0 frames/s, never < 0."""

    async def go():
        app = TailApp(MULTIPAGE, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == 1200, what="load")
            app._slow_tick()
            app._slow_tick()
            # a filter (as `t` sets it): the rows are indexed again from the start; sampled at once, the count
            # has fallen to what the new index holds yet
            app.filter = RowFilter([int(MsgType.TICKER)])
            app._restart()
            app._slow_tick()
            await until(pilot, lambda: app.caught_up and app.filter.types == [int(MsgType.TICKER)], what="tickers")
            app._slow_tick()
            app._slow_tick()
            assert app.fps == 0 and set(app._rates) <= {0.0}, list(app._rates)  # -301,446 then 131,921 before
            assert "0 frames/s" in app.header_text

    run(go())


def test_t_cycles_only_through_the_types_the_journal_holds(tmp_path):
    path = str(tmp_path / "j.dat")
    write_frames(path, 20)  # tickers and orders only

    async def go():
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.caught_up and app.index.count == 20, what="load")
            seen = []
            for _ in range(3):
                await pilot.press("t")
                await until(pilot, lambda: app.caught_up, what="re-indexed")
                seen.append(app.filter.types)
            assert seen == [[int(MsgType.TICKER)], [int(MsgType.ORDER)], None]

    run(go())


def test_goto_before_the_recording_says_so_and_sparklines_follow_the_symbol_filter():
    from kftools.tui.widgets import SparkPanel

    with Reader(MULTIPAGE) as r:
        first = next(iter(r)).gen_time

    async def go():
        app = TailApp(MULTIPAGE, DEFAULT_REGISTRY, symbols=["AAPL"])
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count > 0, what="load")
            app._slow_tick()
            assert set(app.query_one(SparkPanel)._symbols) == {"AAPL"}  # every symbol of the journal before
            await pilot.press("g", *str(first - 10**9), "enter")
            await until(pilot, lambda: table.cursor == 0, what="row 1")
            assert "before the recording" in app.status_text, app.status_text
            await pilot.press("s", *["backspace"] * 4, *"MSFT", "enter")
            await until(pilot, lambda: app.caught_up and app.filter.symbols == ["MSFT"], what="MSFT")
            await until(pilot, lambda: app._slow_tick() or set(app.query_one(SparkPanel)._symbols) == {"MSFT"},
                        what="MSFT sparkline only")

    run(go())


def test_search_reads_every_row_in_a_worker(tmp_path):
    """A match 59,000 rows on is found in one search (50,000 rows a key press before, on the UI thread)."""
    path = str(tmp_path / "big.dat")
    write_frames(path, 60_000, page_size=1 << 22, symbol_of=lambda i: "FINDME" if i == 59_000 else "AAPL")

    async def go():
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == 60_000, what="load")
            await pilot.press("home", "slash", *"findme", "enter")
            await until(pilot, lambda: table.cursor == 59_000, what="the match")
            assert "found 'findme'" in app.status_text

    run(go())


LIVE_WRITER = """
import sys
from kftools.journal import Writer
w = Writer(sys.argv[1], page_size=4096, append=True)
i = int(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:  # a burst of N frames on each line read; the total is printed after it
    for _ in range(int(line)):
        w.write_ticker("AAPL" if i % 2 else "MSFT", 100.0 + i, 99.9 + i, 100.1 + i, float(i))
        i += 1
    print(i, flush=True)
w.close()
"""


def test_the_bottom_is_the_true_last_frames_of_a_summarised_journal_while_a_writer_appends(tmp_path, monkeypatch):
    """On a big journal (sealed pages from their summaries) the first screen and End show the journal's last frames
    with their exact row numbers, never the end of a sealed page while the last one is still being read; a live
    writer (another process) appending meanwhile, across pages, changes nothing of that."""
    from textual import events

    from kftools.tui import watcher

    path = str(tmp_path / "big.dat")
    write_frames(path, 400, page_size=4096)  # ten pages; the sealed ones summarised
    monkeypatch.setattr(watcher, "_WALK_WHOLE", 0)  # as on a journal of millions of frames
    walking, gate = threading.Event(), threading.Event()
    follow = Reader.follow_batches

    def gated(self, *args, **kw):  # the walk of the last page waits until the view has been looked at
        walking.set()
        gate.wait(WAIT)
        yield from follow(self, *args, **kw)

    monkeypatch.setattr(Reader, "follow_batches", gated)

    def truth() -> list[tuple[int, int]]:
        with Reader(path) as r:
            return [(f.page_index, f.offset) for f in r]

    proc = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, path, "400"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)

    def burst(n: int) -> None:
        proc.stdin.write(f"{n}\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    try:
        assert proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]

        async def go():
            app = TailApp(path, DEFAULT_REGISTRY)
            async with app.run_test(size=SIZE) as pilot:
                table = app.query_one(FrameTable)

                def drawn() -> list[tuple[int, int]]:
                    return [(f.page_index, f.offset) for f in table.drawn[1]]

                def bottom(n: int) -> bool:
                    top, shown = table.drawn
                    rows = min(table.visible_rows, n)
                    return table.count == n and top == n - rows and len(shown) == rows

                await until(pilot, lambda: walking.is_set() and app.reader is not None, what="the last page's walk")
                app._tick()
                await pilot.pause()
                # the summarised pages alone are not shown (their last rows are not the journal's last)
                assert table.count == 0 and not table.drawn[1] and len(app.index.pages) == 0
                gate.set()
                await until(pilot, lambda: bottom(400), what="the bottom, first screen")
                assert len(app.index.pages) > 5 and drawn() == truth()[table.drawn[0]:]
                await until(pilot, lambda: "row 400 of 400" in app.status_text, what="row 400 of 400")

                await pilot.press("home")
                await until(pilot, lambda: table.drawn[0] == 0 and bool(table.drawn[1]), what="the top")
                burst(300)  # across pages, while the view shows the top
                assert proc.stdout.readline().strip() == "700"  # type: ignore[union-attr]
                await until(pilot, lambda: table.count == 700 and table.new_since_pause == 300, what="700 counted")
                assert drawn() == truth()[: len(drawn())]
                await pilot.press("end")
                await until(pilot, lambda: bottom(700), what="the bottom after End")
                assert drawn() == truth()[table.drawn[0]:]
                await until(pilot, lambda: "row 700 of 700" in app.status_text, what="row 700 of 700")

                # End pressed while the writer writes: whatever rows are drawn are those rows of the journal
                await pilot.press("home")
                burst(1000)
                app.post_message(events.Key("end", None))  # now: pilot.press would wait for the process to idle
                await until(pilot, lambda: table.following and table.drawn[0] > 0, what="following again")
                top, seen = table.drawn[0], drawn()
                assert proc.stdout.readline().strip() == "1700"  # type: ignore[union-attr]
                assert seen == truth()[top : top + len(seen)]
                await until(pilot, lambda: bottom(1700), what="the bottom after the burst")
                assert drawn() == truth()[table.drawn[0]:]

        run(go())
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=WAIT)


def test_keys_redraw_the_table_without_laying_the_screen_out_and_a_taller_header_still_grows(monkeypatch):
    """A keypress changes the rows and the status line, not any widget's size: no layout of the screen (10-40 ms
    each, before, on every refresh that changed the status line or the header); a header with more lines is laid
    out (it grows)."""
    from rich.text import Text
    from textual.screen import Screen

    from kftools.tui.widgets import HeaderBar

    layouts = []
    relayout = Screen._refresh_layout

    def counted(self, *args, **kw):
        layouts.append(1)
        return relayout(self, *args, **kw)

    monkeypatch.setattr(Screen, "_refresh_layout", counted)

    async def go():
        app = TailApp(MULTIPAGE, DEFAULT_REGISTRY, live_stats=False)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(FrameTable)
            await until(pilot, lambda: app.caught_up and table.count == 1200, what="load")
            await pilot.pause()
            layouts.clear()
            await pilot.press("up", "up", "home", "end")
            await until(pilot, lambda: table.following and table.drawn[0] > 0 and "row 1,200 of 1,200" in
                        app.status_text, what="back at the bottom")
            await pilot.pause()
            assert layouts == [], "a keypress laid the screen out"
            header = app.query_one(HeaderBar)
            lines = header.size.height
            app._update_header = lambda: None  # type: ignore[method-assign]  # the refresh would set it back
            header.update(Text(header._shown.plain + "\none more line"))  # type: ignore[union-attr]
            await until(pilot, lambda: header.size.height == lines + 1, what="the header grows")

    run(go())


def test_the_first_screen_is_the_bottom_when_the_rows_are_counted_before_the_screen_is_laid_out(tmp_path,
                                                                                                  monkeypatch):
    """The rows are often all counted before the view has a size (a small journal, or a big one's summaries and
    last page read while the screen starts): the first screen drawn is still the journal's last frames, with
    their row numbers, not the last row alone at the top of an otherwise empty screen."""
    path = str(tmp_path / "j.dat")
    write_frames(path, 1000, page_size=1 << 20)
    with Reader(path) as r:
        truth = [(f.page_index, f.offset) for f in r]

    mount = TailApp.on_mount

    def on_mount_counted(self) -> None:  # as on a fast machine: every row counted before the first layout
        deadline = time.monotonic() + WAIT
        while not self.watcher.caught_up and time.monotonic() < deadline:
            time.sleep(0.001)
        mount(self)

    screens: list[tuple[int, list[tuple[int, int]]]] = []
    render = FrameTable.render

    def recorded(self):
        out = render(self)
        if self.drawn[1]:
            screens.append((self.drawn[0], [(f.page_index, f.offset) for f in self.drawn[1]]))
        return out

    monkeypatch.setattr(TailApp, "on_mount", on_mount_counted)
    monkeypatch.setattr(FrameTable, "render", recorded)

    async def go():
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: bool(screens) and app.caught_up, what="the first rows")
            rows = app.query_one(FrameTable).visible_rows
            top, shown = screens[0]
            assert (top, shown) == (1000 - rows, truth[-rows:])

    run(go())
