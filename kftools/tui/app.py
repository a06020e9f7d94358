"""``kftools tail``: the Textual live view of a journal."""

from __future__ import annotations

import collections
import os
import time

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Input

from ..errors import KftoolsError
from ..journal.reader import Frame, Reader
from ..journal.registry import TypeRegistry
from ..timeparse import format_time, parse_time
from .index import JournalIndex, RowFilter
from .messages import WatcherEvent
from .watcher import PriceSampler, Watcher
from .widgets import DetailPane, FrameTable, HeaderBar, SparkPanel, StatusBar, frame_cells, frame_detail

SEARCH_LIMIT = 50_000  # rows examined per search key press: the UI stays responsive
STATE_STYLE = {"alive": "bold green", "exited": "bold blue", "crashed": "bold red", "unknown": "yellow"}


def format_lag(ns: int) -> str:
    if ns < 0:
        return f"-{format_lag(-ns)}"
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    s = ns / 1e9
    if s < 60:
        return f"{s:.2f} s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h}h"


class TailApp(App):
    """Follow a journal live: newest frames, rate, lag, writer state, details and sparklines."""

    TITLE = "kftools tail"
    CSS = """
    Screen { layout: vertical; }
    #main { height: 1fr; }
    #prompt { dock: bottom; display: none; }
    #prompt.shown { display: block; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("enter,d", "toggle_detail", "Detail"),
        Binding("t", "cycle_type", "Type"),
        Binding("s", "prompt('symbol')", "Symbol"),
        Binding("slash", "prompt('search')", "Search"),
        Binding("n", "search(1)", "Next", show=False),
        Binding("N", "search(-1)", "Prev", show=False),
        Binding("g", "prompt('time')", "Go to time"),
        Binding("escape", "close_prompt", "Close", show=False),
    ]

    def __init__(
        self,
        path: str,
        registry: TypeRegistry,
        *,
        types: list[int] | None = None,
        symbols: list[str] | None = None,
        now_ns: int | None = None,
        display_path: str | None = None,
        refresh_hz: float = 10.0,
        live_stats: bool = True,
    ):
        """``now_ns`` freezes "now" (lag) and ``live_stats=False`` stops the wall-clock rate: for snapshots."""
        super().__init__()
        self.path = os.fspath(path)
        self.registry = registry
        self.filter = RowFilter(types, symbols)
        self.now_ns = now_ns
        self.display_path = display_path or self.path
        self.refresh_hz = refresh_hz
        self.live_stats = live_stats
        self.index = JournalIndex(self.filter)
        self.prices = PriceSampler(registry)
        self.watcher: Watcher | None = None
        self.generation = 0
        self.reader: Reader | None = None  # the view's own reader: decodes visible rows only
        self.state = "waiting"
        self.state_text = ""
        self.writer = ("unknown", 0)
        self.damage: object = None  # the watcher's "damaged" payload (a Damage), shown in the header
        self.caught_up = False
        self.fps = 0.0
        self._rates: collections.deque = collections.deque(maxlen=60)
        self._last_total: tuple[float, int] | None = None
        self._detail_row: int | None = None
        self._prompt_mode = ""
        self._search = ""
        self._message = ""
        self.header_text = ""  # plain text of what the header and status line show (for tests and tools)
        self.status_text = ""
        self.detail_frame: Frame | None = None
        self._reader_pages = 0

    # -- layout ----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Horizontal(id="main"):
            yield FrameTable(self._fetch, id="frames")
            yield SparkPanel(id="sparks")
        yield DetailPane(id="detail")
        yield StatusBar(id="status")
        yield Input(id="prompt")
        yield Footer()

    @property
    def table(self) -> FrameTable:
        return self.query_one(FrameTable)

    def on_mount(self) -> None:
        self.table.focus()
        self._start_watcher()
        self.set_interval(1 / self.refresh_hz, self._tick)
        self.set_interval(1.0, self._slow_tick)
        self._tick()

    def on_unmount(self) -> None:
        self._stop_watcher()

    # -- the follower ------------------------------------------------------------
    def _start_watcher(self) -> None:
        self.generation += 1
        gen = self.generation
        self.caught_up = False
        self.damage = None

        def notify(kind: str, payload: object) -> None:
            self.post_message(WatcherEvent(gen, kind, payload))

        self.watcher = Watcher(self.path, self.registry, self.index, self.prices, notify)
        self.watcher.start()

    def _stop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher.join(timeout=2)
            self.watcher = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def _restart(self) -> None:
        """New filter: a fresh index, re-read from the beginning in the worker."""
        self._stop_watcher()
        self.index = JournalIndex(self.filter)
        self.prices = PriceSampler(self.registry)
        self.table.reset()
        self._start_watcher()
        self._tick()

    def on_watcher_event(self, event: WatcherEvent) -> None:
        if event.generation != self.generation:
            return
        if event.kind == "waiting":
            self.state = "waiting"
            self.state_text = f"{event.payload}; waiting for it"
        elif event.kind == "opened":
            self.state = "open"
            self.reader = Reader(self.path, registry=self.registry)
            self._poll_writer()
        elif event.kind == "caught_up":
            self.caught_up = True
            self._slow_tick(sample=False)  # sparklines and writer state at once, not a second later
        elif event.kind == "damaged":
            self.damage = event.payload
        elif event.kind == "error":
            self.state = "error"
            self.state_text = str(event.payload)
        self._tick()

    def _fetch(self, start: int, stop: int) -> list[Frame]:
        if self.reader is None:
            return []
        try:
            return self.index.frames(self.reader, start, stop)
        except (KftoolsError, ValueError, IndexError):
            return []  # a page vanished under us (journal replaced): show nothing rather than crash

    # -- periodic refresh (bounded rate, whatever the writer does) ----------------
    def _tick(self) -> None:
        table = self.table
        table.set_count(self.index.count)
        self._update_header()
        self._update_status()
        detail = self.query_one(DetailPane)
        if detail.has_class("shown"):
            row = table.cursor
            if row != self._detail_row:
                self._detail_row = row
                frames = self._fetch(row, row + 1) if row >= 0 else []
                self.detail_frame = frames[0] if frames else None
                detail.update(frame_detail(frames[0]) if frames else "no frame selected")

    def _slow_tick(self, sample: bool = True) -> None:
        if self.live_stats and sample:
            now = time.monotonic()
            total = self.index.total
            if self._last_total is not None:
                t0, n0 = self._last_total
                self.fps = (total - n0) / max(1e-6, now - t0)
                self._rates.append(self.fps)
            self._last_total = (now, total)
        sparks = self.query_one(SparkPanel)
        sparks.update_fps(list(self._rates), self.fps)
        sparks.update_prices(self.prices.snapshot())
        self._renew_reader()
        self._poll_writer()

    def _renew_reader(self) -> None:
        """A fresh view reader when the writer has moved to a new page.

        The old one's mappings of pages left behind go with it, so the tail's
        resident memory does not collect every page it has shown.
        """
        pages = self.index.page_count
        if self.reader is not None and pages != self._reader_pages:
            self._reader_pages = pages
            old, self.reader = self.reader, Reader(self.path, registry=self.registry)
            old.close()

    def _poll_writer(self) -> None:
        if self.reader is not None:
            try:
                self.writer = self.reader.writer_state()
            except (KftoolsError, OSError):
                self.writer = ("unknown", 0)

    def _update_header(self) -> None:
        idx = self.index
        t = Text()
        t.append("kftools tail ", "bold")
        t.append(self.display_path, "bold underline")
        if idx.pages:
            shown = idx.page_of_row(max(0, self.table.cursor))
            t.append(f"   page {(shown or 0) + 1} of {idx.pages[-1].index + 1}")
            if not self.caught_up:
                t.append(" (indexing…)", "yellow")
        t.append(f"   {idx.total:,} frames", "bold")
        if not self.filter.trivial:
            t.append(f" ({idx.count:,} match)")
        t.append(f"   {self.fps:,.0f} frames/s")
        if idx.newest_time is not None:
            now = self.now_ns if self.now_ns is not None else time.time_ns()
            t.append("   lag ")
            t.append(format_lag(now - idx.newest_time), "bold")
        t.append("\n")
        if self.state == "waiting":
            t.append("waiting ", "bold yellow")
            t.append(self.state_text)
        elif self.state == "error":
            t.append("error ", "bold red")
            t.append(self.state_text)
        else:
            state, pid = self.writer
            label = {"alive": "alive", "exited": "exited cleanly", "crashed": "gone without closing (crashed)",
                     "unknown": "unknown (no writer trace)"}[state]
            t.append("writer ")
            t.append(f"● {label}", STATE_STYLE[state])
            if pid:
                t.append(f" pid {pid}")
            if state == "crashed":
                t.append(f"; {idx.total:,} valid frames kept")
            if idx.newest_time is not None:
                t.append(f"   newest {format_time(idx.newest_time)}", "dim")
            if self.damage is not None:
                t.append(f"   DAMAGED: {self.damage}", "bold red")
        self.header_text = t.plain
        self.query_one(HeaderBar).update(t)

    def _update_status(self) -> None:
        table = self.table
        t = Text()
        if table.following:
            t.append("▶ following", "bold green")
        else:
            t.append("⏸ paused", "bold yellow")
            t.append(f"  +{table.new_since_pause:,} new since (End to follow)")
        if table.count:
            t.append(f"   row {table.cursor + 1:,} of {table.count:,}")
        if not self.filter.trivial:
            parts = []
            if self.filter.types:
                parts.append("type=" + ",".join(self.registry.name(x) for x in self.filter.types))
            if self.filter.symbols:
                parts.append("symbol=" + ",".join(self.filter.symbols))
            t.append("   filter: " + " ".join(parts), "bold magenta")
        if self._search:
            t.append(f"   search: {self._search!r}", "cyan")
        if self._message:
            t.append(f"   {self._message}", "italic")
        self.status_text = t.plain
        self.query_one(StatusBar).update(t)

    # -- actions -----------------------------------------------------------------
    def on_frame_table_selected(self, event: FrameTable.Selected) -> None:
        self._message = ""

    def action_toggle_detail(self) -> None:
        detail = self.query_one(DetailPane)
        detail.toggle_class("shown")
        self._detail_row = None
        self._tick()

    def action_cycle_type(self) -> None:
        ids = [mt.id for mt in self.registry.types()]
        cur = self.filter.types
        if not cur or len(cur) != 1 or cur[0] not in ids:
            nxt = [ids[0]] if not cur else None
        else:
            i = ids.index(cur[0]) + 1
            nxt = [ids[i]] if i < len(ids) else None
        self.filter = RowFilter(nxt, self.filter.symbols)
        self._restart()

    def action_prompt(self, mode: str) -> None:
        prompt = self.query_one("#prompt", Input)
        self._prompt_mode = mode
        prompt.placeholder = {
            "symbol": "symbols to show, comma separated (empty: all)",
            "search": "search text (n: next, N: previous)",
            "time": "go to time: ns, ISO-8601 (UTC) or +10s from the first frame",
        }[mode]
        prompt.value = {"symbol": ",".join(self.filter.symbols or []), "search": self._search}.get(mode, "")
        prompt.add_class("shown")
        prompt.focus()

    def action_close_prompt(self) -> None:
        prompt = self.query_one("#prompt", Input)
        if prompt.has_class("shown"):
            prompt.remove_class("shown")
            self.table.focus()
        else:
            self.action_toggle_detail() if self.query_one(DetailPane).has_class("shown") else None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.action_close_prompt()
        mode = self._prompt_mode
        if mode == "symbol":
            syms = [s.strip() for s in value.split(",") if s.strip()] or None
            self.filter = RowFilter(self.filter.types, syms)
            self._restart()
        elif mode == "search":
            self._search = value
            if value:
                self.action_search(1)
        elif mode == "time" and value:
            self.goto_time(value)
        self._tick()

    def goto_time(self, text: str) -> None:
        """Select the first row at or after a time (pauses following)."""
        if self.reader is None:
            return
        first = self.index.pages[0].first_time if self.index.pages else None
        try:
            t = parse_time(text, first)
        except KftoolsError as e:
            self._message = str(e)
            return
        row = self.index.row_at_time(self.reader, t)
        if row >= self.index.count:
            self._message = "no frame at or after that time yet"
            return
        self.table.select(row)
        self._message = f"at {format_time(t)}"

    def action_search(self, direction: int) -> None:
        """Next (1) or previous (-1) row whose text contains the search, within SEARCH_LIMIT rows."""
        needle = self._search.lower()
        if not needle or self.reader is None:
            return
        table = self.table
        row = table.cursor + direction
        examined = 0
        chunk = 1024
        while 0 <= row < table.count and examined < SEARCH_LIMIT:
            lo, hi = (row, min(row + chunk, table.count)) if direction > 0 else (max(0, row - chunk + 1), row + 1)
            frames = self._fetch(lo, hi)
            order = range(len(frames)) if direction > 0 else range(len(frames) - 1, -1, -1)
            for i in order:
                cells = frame_cells(frames[i])
                if needle in " ".join(str(c) for c in cells).lower():
                    table.select(lo + i)
                    self._message = f"found {self._search!r}"
                    self._tick()
                    return
            examined += hi - lo
            row = hi if direction > 0 else lo - 1
        self._message = (f"{self._search!r} not in the next {examined:,} rows (press again to go on)"
                         if 0 <= row < table.count else f"{self._search!r} not found")
        if 0 <= row < table.count:
            table.select(row - direction)
        self._tick()


def probe(path: str, registry: TypeRegistry) -> None:
    """Raise the error a bad journal deserves before the screen opens; a missing one is waited for."""
    from ..journal.page import NotYetWritten

    try:
        Reader(path, registry=registry).close()
    except NotYetWritten:
        pass
