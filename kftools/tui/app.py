"""``kftools tail``: the Textual live view of a journal."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import os
import sys
import time
from collections.abc import Sequence

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import Footer, Input
from textual.worker import get_current_worker

from ..errors import KftoolsError, UsageError
from ..journal.format import WriterState
from ..journal.merge import DEFAULT_HOLD, MergedReader
from ..journal.positions import ReaderLag, reader_lags
from ..journal.reader import Frame, Reader
from ..journal.registry import TypeRegistry
from ..journal.resolve import names_one, resolve_journals
from ..timeparse import format_time, parse_time
from .index import JournalIndex, RowFilter
from .merged import MergedIndex, MergedWatcher
from .messages import WatcherEvent
from .watcher import PriceSampler, Watcher
from .widgets import DetailPane, FrameTable, HeaderBar, SparkPanel, StatusBar, frame_cells, frame_detail

#: several journals: a header line each up to this many, else the worst ones and a count
MERGED_LINES = 4
GIL_SWITCH_S = 0.0002  # the interpreter's thread hand-over while the view runs (its follower thread needs the GIL often)
#: how long the view waits, before its screen starts, for the follower to check the sealed pages' summaries (a few
#: system calls a page, 0.1 ms a page alone, several times that while the screen starts beside it)
SUMMARIES_WAIT_S = 0.1
#: how long the view waits, before its first screen, for the follower to have read what the journal held (the
#: bottom is then on the first screen; a longer history shows its progress instead)
HISTORY_WAIT_S = 0.05
STATE_STYLE = {WriterState.ALIVE: "bold green", WriterState.EXITED: "bold blue", WriterState.CRASHED: "bold red",
               WriterState.UNKNOWN: "yellow"}


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
    """Follow a journal live: newest frames, rate, lag, writer state, details and sparklines.

    Several journals (or a folder) show as one timeline merged by gen_time, with a journal column.
    """

    TITLE = "kftools tail"
    CSS = """
    Screen { layout: vertical; }
    #main { height: 1fr; }
    #prompt { dock: bottom; display: none; }
    #prompt.shown { display: block; }
    /* narrow: the sparklines give their room to the table; short: the detail pane leaves rows visible */
    Screen.-narrow #sparks { display: none; }
    Screen.-short #detail { height: 10; }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("enter,d", "toggle_detail", "Detail"),
        Binding("t", "cycle_type", "Type"),
        # priority: they open the prompt as the key arrives, so keys typed right behind go into it
        Binding("s", "prompt('symbol')", "Symbol", priority=True),
        Binding("slash", "prompt('search')", "Search", priority=True),
        Binding("n", "search(1)", "Next", show=False),
        Binding("N", "search(-1)", "Prev", show=False),
        Binding("g", "prompt('time')", "Go to time", priority=True),
        Binding("escape", "close_prompt", "Close", show=False),
    ]

    def __init__(
        self,
        path: str | os.PathLike | Sequence[str | os.PathLike],
        registry: TypeRegistry,
        *,
        types: list[int] | None = None,
        symbols: list[str] | None = None,
        now_ns: int | None = None,
        display_path: str | None = None,
        refresh_hz: float = 10.0,
        live_stats: bool = True,
        tz: dt.tzinfo | None = None,
        hold: float = DEFAULT_HOLD,
    ):
        """``path``: a journal, or several journals and folders (merged by gen_time; ``hold`` as in
        ``MergedReader.follow_batches``). Times show in ``tz`` (default UTC). ``now_ns`` freezes "now" (lag)
        and ``live_stats=False`` stops the wall-clock rate: for snapshots."""
        super().__init__()
        self.tz = tz
        paths = [os.fspath(path)] if isinstance(path, str | os.PathLike) else [os.fspath(p) for p in path]
        if len(paths) == 1 and os.path.isdir(paths[0]):
            with contextlib.suppress(KftoolsError):
                if names_one(paths[0]):  # a folder holding one Kungfu journal: the one-journal view
                    paths = [resolve_journals(paths)[0].path]
        self.paths = paths
        #: several journals (or a folder of them): the merged view
        self.merged = len(paths) != 1 or os.path.isdir(paths[0])
        self.path = ", ".join(paths)
        self.journal_paths: list[str] = []  # the merged view's journals, once opened (folders expanded)
        self.hold = hold
        self.registry = registry
        self.filter = RowFilter(types, symbols)
        self.now_ns = now_ns
        self.display_path = display_path or self.path
        self.refresh_hz = refresh_hz
        self.live_stats = live_stats
        self.index: JournalIndex | MergedIndex = self._new_index()
        self.prices = PriceSampler(registry)
        self.watcher: Watcher | MergedWatcher | None = None
        self.generation = 0
        self._switch_interval = sys.getswitchinterval()  # restored when the view ends
        self.reader: Reader | MergedReader | None = None  # the view's own reader: decodes visible rows only
        self.state = "waiting"
        self.state_text = ""
        self.writer: tuple[WriterState, int] | list[tuple[WriterState, int]] = (WriterState.UNKNOWN, 0)
        self.holding: list[int] = []  # merged: journals whose newest frames wait for a silent one
        self._held_since: dict[int, tuple[object, float]] = {}
        self._journal_rates: list[float] = []
        self._journal_totals: tuple[float, list[int]] | None = None
        self.readers: list[ReaderLag] = []
        self.damage: object = None  # the watcher's "damaged" payload (a Damage), shown in the header
        self.caught_up = False
        self.fps = 0.0
        self._rates: collections.deque = collections.deque(maxlen=60)
        self._last_total: tuple[float, int] | None = None
        self._detail_row: tuple[int, int] | None = None
        self._prompt_mode = ""
        self._search = ""
        self._message = ""
        self._message_row: int | None = None  # the message goes when the cursor leaves this row
        self.header_text = ""  # plain text of what the header and status line show (for tests and tools)
        self.status_text = ""
        self.detail_frame: Frame | None = None
        self.detail_journal: str | None = None  # merged: the journal of the frame in the detail pane
        self._reader_pages = 0
        self._types_seen: set[int] = set()  # message types the journal holds (the filters' indexes see them all)

    # -- layout ----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Horizontal(id="main"):
            yield FrameTable(self._fetch, self.tz, journals=self._journal_names if self.merged else None,
                             rows=lambda: self.index.count,
                             id="frames")
            yield SparkPanel(id="sparks")
        yield DetailPane(id="detail")
        yield StatusBar(id="status")
        yield Input(id="prompt")
        yield Footer()

    @property
    def table(self) -> FrameTable:
        return self.query_one(FrameTable)

    def on_load(self) -> None:
        # before the screen is built: a big journal's last page is read while the widgets are composed
        # The follower thread releases the GIL in every scan and waits for it back after each; at the default 5 ms
        # hand-over it waited out the screen's start-up and a big journal's first screen took 110 ms longer.
        sys.setswitchinterval(GIL_SWITCH_S)
        # The summaries are checked first, alone: a few system calls a page file, each a hand-over of the GIL; beside
        # the screen's start-up they took 40 ms for 63 pages, alone 4 ms. The last page's walk (in C, mostly without
        # the GIL) then runs beside the start-up.
        self._start_watcher().summaries_read.wait(SUMMARIES_WAIT_S)

    def on_mount(self) -> None:
        # The last page's walk, beside the screen's start-up, often ends just after the first paint: the bottom then
        # came a refresh or a tick later (a first screen of 90-110 ms on a 10 M-frame journal, against 75 ms). The
        # screen is laid out by now; a short wait without the GIL lets the walk finish before the first paint.
        assert self.watcher is not None
        self.watcher.history_read.wait(HISTORY_WAIT_S)
        self.table.focus()
        self.set_interval(1 / self.refresh_hz, self._tick)
        self.set_interval(1.0, self._slow_tick)
        self._tick()

    def on_unmount(self) -> None:
        self._stop_watcher()
        sys.setswitchinterval(self._switch_interval)

    # -- the follower ------------------------------------------------------------
    def _start_watcher(self) -> Watcher | MergedWatcher:
        self.generation += 1
        gen = self.generation
        self.caught_up = False
        self.damage = None

        def notify(kind: str, payload: object) -> None:
            self.post_message(WatcherEvent(gen, kind, payload))

        if isinstance(self.index, MergedIndex):
            self.watcher = MergedWatcher(self.paths, self.registry, self.index, self.prices, notify, hold=self.hold)
        else:
            self.watcher = Watcher(self.path, self.registry, self.index, self.prices, notify)
        self.watcher.start()
        return self.watcher

    def _new_index(self) -> JournalIndex | MergedIndex:
        return MergedIndex(self.filter) if self.merged else JournalIndex(self.filter)

    def _open_reader(self) -> Reader | MergedReader:
        if self.merged:
            return MergedReader(self.journal_paths, registry=self.registry)
        return Reader(self.path, registry=self.registry)

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
        self._types_seen |= self.index.types_seen
        self._last_total = self._journal_totals = None  # the new index counts from 0: not frames gone
        self.index = self._new_index()
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
            if self.merged:
                self.journal_paths = list(event.payload)  # type: ignore[call-overload]
            self.reader = self._open_reader()
            if self.display_path == self.path and isinstance(self.reader, Reader):
                self.display_path = self.reader.name  # a Kungfu journal by its location
            self._poll_writer()
        elif event.kind == "caught_up":
            self.caught_up = True
            # sparklines and writer state at once, not a second later; after the rows are drawn (mounting a
            # sparkline lays the screen out)
            self.call_after_refresh(self._slow_tick, sample=False)
        elif event.kind == "damaged":
            # the watcher has read all it can of that journal: its valid prefix is indexed
            self.damage = event.payload
            self.caught_up = self.caught_up or not self.merged  # several: the others are still followed
            self._slow_tick(sample=False)
        elif event.kind == "error":
            self.state = "error"
            self.state_text = str(event.payload)
        self._tick()

    def _fetch(self, start: int, stop: int) -> list[Frame]:
        if self.reader is None:
            return []
        try:
            return self.index.frames(self.reader, start, stop)  # type: ignore[arg-type]  # the index's reader kind
        except (KftoolsError, ValueError, IndexError, OSError):
            return []  # a page vanished under us (journal replaced): show nothing rather than crash

    def _journal_names(self, start: int, stop: int) -> list[str]:
        """The journal column of rows ``start`` to ``stop`` (the merged view)."""
        idx = self.index
        if not isinstance(idx, MergedIndex):
            return []
        return [idx.journals[j].short for j in idx.journal_of(start, stop)]

    # -- periodic refresh (bounded rate, whatever the writer does) ----------------
    def _tick(self) -> None:
        try:
            table = self.table
        except NoMatches:
            return  # the app is shutting down and its widgets are gone; a late timer or event is no error
        table.set_count(self.index.count)
        self._update_header()
        self._update_status()
        detail = self.query_one(DetailPane)
        if detail.has_class("shown"):
            row = table.cursor
            if (row, self.size.width) != self._detail_row:
                self._detail_row = (row, self.size.width)  # the pane lays out for the width: redo on resize
                frames = self._fetch(row, row + 1) if row >= 0 else []
                self.detail_frame = frames[0] if frames else None
                journal = None
                if frames and isinstance(self.index, MergedIndex):
                    journal = self.index.journals[self.index.journal_of(row, row + 1)[0]].name
                self.detail_journal = journal
                detail.update(frame_detail(frames[0], self.tz, self.size.width, journal) if frames
                              else "no frame selected")

    def _slow_tick(self, sample: bool = True) -> None:
        if self.live_stats and sample and not self.caught_up:
            # reading what was there already (at start, or again after a filter change) is not arrival
            self._last_total = self._journal_totals = None
            self.fps = 0.0
            self._journal_rates = []
        elif self.live_stats and sample:
            now = time.monotonic()
            total = self.index.total
            if self._last_total is not None:
                t0, n0 = self._last_total
                self.fps = (total - n0) / max(1e-6, now - t0)
                self._rates.append(self.fps)
            self._last_total = (now, total)
            if isinstance(self.index, MergedIndex):
                totals = [j.total for j in self.index.journals]
                if self._journal_totals is not None and len(self._journal_totals[1]) == len(totals):
                    t0, before = self._journal_totals
                    self._journal_rates = [(a - b) / max(1e-6, now - t0) for a, b in zip(totals, before, strict=True)]
                self._journal_totals = (now, totals)
        try:
            sparks = self.query_one(SparkPanel)
        except NoMatches:
            return  # shutting down
        sparks.update_fps(list(self._rates), self.fps)
        prices = self.prices.snapshot()
        if self.filter.symbols:  # the sparklines show what the table shows
            prices = {k: v for k, v in prices.items() if k in self.filter.symbols}
        sparks.update_prices(prices)
        self._renew_reader()
        self._poll_writer()
        self._poll_readers()
        self._poll_holding()

    def _poll_readers(self) -> None:
        """Named readers (``--name`` followers) and their lag, for the header's third line."""
        if self.reader is None:
            return
        try:
            if isinstance(self.reader, MergedReader) and isinstance(self.index, MergedIndex):
                states = self.index.journals
                self.readers = [lag for r, st in zip(self.reader.readers, states, strict=False)
                                for lag in reader_lags(r, end=r.end_position(), newest=st.newest_time)]
            elif isinstance(self.reader, Reader):
                self.readers = reader_lags(self.reader, end=self.reader.end_position(), newest=self.index.newest_time)
        except (KftoolsError, OSError):
            self.readers = []

    def _poll_holding(self) -> None:
        """Merged: the journals whose written frames have not reached the screen for a whole second.

        The merged follower holds a journal's frames back until every other journal has shown a
        frame as late, or has been silent for ``hold`` seconds; with a long ``hold`` that wait is
        visible, and the header says who waits for whom.
        """
        if not isinstance(self.reader, MergedReader) or not isinstance(self.index, MergedIndex):
            return
        now = time.monotonic()
        try:
            ends = self.reader.end_position()
        except (KftoolsError, OSError):
            return
        holding = []
        for j, (st, end) in enumerate(zip(self.index.journals, ends, strict=False)):
            behind = st.end is None or tuple(end) > tuple(st.end)
            if not behind:
                self._held_since.pop(j, None)
                continue
            seen, since = self._held_since.setdefault(j, (st.end, now))
            if seen != st.end:  # it moved: not held, only not read yet
                self._held_since[j] = (st.end, now)
            elif now - since >= 1.0:
                holding.append(j)
        self.holding = holding

    def _renew_reader(self) -> None:
        """A fresh view reader when the writer has moved to a new page.

        The old one's mappings of pages left behind go with it, so the tail's
        resident memory does not collect every page it has shown.
        """
        pages = self.index.page_count
        if self.reader is not None and pages != self._reader_pages:
            self._reader_pages = pages
            old, self.reader = self.reader, self._open_reader()
            old.close()

    def _poll_writer(self) -> None:
        if self.reader is not None:
            try:
                self.writer = self.reader.writer_state()
            except (KftoolsError, OSError):
                self.writer = (WriterState.UNKNOWN, 0)

    def _update_header(self) -> None:
        if isinstance(self.index, MergedIndex):
            self._update_merged_header(self.index)
            return
        idx = self.index
        assert isinstance(self.writer, tuple)
        state, pid = self.writer
        width = max(20, self.size.width - 2)
        t = Text()
        line = 0

        def part(*spans: tuple[str, str]) -> None:
            """Append one phrase; a phrase that would not fit starts a new line instead of being split."""
            nonlocal line
            n = sum(len(x) for x, _ in spans)
            if line and line + 2 + n > width:
                t.append("\n")
                line = 0
            elif line:
                t.append("  ")
                line += 2
            for text, style in spans:
                t.append(text, style)
            line += n

        part((self.display_path, "bold underline"))
        if idx.pages:
            shown = idx.page_of_row(max(0, self.table.cursor))
            base = self.reader.first_page if isinstance(self.reader, Reader) else 0  # Kungfu's page ids start at 1
            part((f"page {(shown or base) - base + 1} of {idx.pages[-1].index - base + 1}", ""),
                 *([(" (indexing…)", "yellow")] if not self.caught_up else []))
        part((f"{idx.total:,} frames", "bold"), *([(f" ({idx.count:,} match)", "")] if not self.filter.trivial else []))
        part((f"{self.fps:,.0f} frames/s", ""))
        if idx.newest_time is not None and state == WriterState.ALIVE and self.state == "open":
            # lag means something only while a writer is adding frames; a finished recording has none
            now = self.now_ns if self.now_ns is not None else time.time_ns()
            part(("lag ", ""), (format_lag(now - idx.newest_time), "bold"))
        t.append("\n")
        if self.state == "waiting":
            t.append("waiting ", "bold yellow")
            t.append(self.state_text)
        elif self.state == "error":
            t.append("error ", "bold red")
            t.append(self.state_text)
        else:
            label = {WriterState.ALIVE: "alive", WriterState.EXITED: "exited cleanly",
                     WriterState.CRASHED: "gone without closing (crashed)",
                     WriterState.UNKNOWN: "unknown (no writer trace)"}[state]
            t.append("writer ")
            t.append(f"● {label}", STATE_STYLE[state])
            if pid:
                t.append(f" pid {pid}")
            if state == WriterState.CRASHED:
                t.append(f"; {idx.total:,} valid frames kept")
            if idx.newest_time is not None:
                t.append(f"   newest {format_time(idx.newest_time, self.tz)}", "dim")
            if self.damage is not None:
                # a line of its own, wrapped rather than cut: the offset and the reason both matter
                t.append("\n")
                t.append(f"DAMAGED: {self.damage}; showing the valid frames before it", "bold red")
        self._append_readers(t)
        self.header_text = t.plain
        self.query_one(HeaderBar).update(t)

    def _append_readers(self, t: Text) -> None:
        if self.readers:
            t.append("\nreaders ")
            for r in self.readers:
                t.append(f" {r.entry.shown} ", "bold")
                if r.entry.state == "alive":
                    t.append(f"lag {r.frames:,} frames {format_lag(int(r.seconds * 1e9))} ")
                else:
                    t.append(f"{r.entry.state} ", "dim")

    def _update_merged_header(self, idx: MergedIndex) -> None:
        """Several journals: the whole first, then a line per journal (at most MERGED_LINES, else the worst)."""
        width = max(20, self.size.width - 2)
        now = self.now_ns if self.now_ns is not None else time.time_ns()
        states = self.writer if isinstance(self.writer, list) else []
        t = Text()
        # the journals are named on their own lines: the path only when it says more (a folder, a display name)
        shown_path = self.display_path if self.display_path != self.path or len(self.paths) == 1 else ""
        first = [(shown_path, "bold underline"),
                 (f"{len(idx.journals)} journals merged by gen_time" if idx.journals else "", ""),
                 (f"{idx.total:,} frames", "bold")]
        if not self.filter.trivial:
            first.append((f"({idx.count:,} match)", ""))
        first.append((f"{self.fps:,.0f} frames/s", ""))
        if not self.caught_up and idx.journals and not self.holding:
            first.append(("(indexing…)", "yellow"))
        _wrap_phrases(t, [p for p in first if p[0]], width)
        if self.state == "waiting":
            t.append("\nwaiting ", "bold yellow")
            t.append(self.state_text)
        elif self.state == "error":
            t.append("\nerror ", "bold red")
            t.append(self.state_text)
        rows = list(range(len(idx.journals)))
        if len(rows) > MERGED_LINES:
            # the worst first: a crashed writer, then the oldest newest frame of a live one
            order = {WriterState.CRASHED: 0, WriterState.UNKNOWN: 1, WriterState.ALIVE: 2, WriterState.EXITED: 3}
            rows.sort(key=lambda j: (order.get(states[j][0], 1) if j < len(states) else 1,
                                     idx.journals[j].newest_time or 0))
            hidden = len(rows) - (MERGED_LINES - 1)
            rows = rows[: MERGED_LINES - 1]
        else:
            hidden = 0
        for j in rows:
            st = idx.journals[j]
            state, pid = states[j] if j < len(states) else (WriterState.UNKNOWN, 0)
            label = {WriterState.ALIVE: "alive", WriterState.EXITED: "exited", WriterState.CRASHED: "crashed",
                     WriterState.UNKNOWN: "no trace"}[state]
            t.append("\n")
            parts: list[tuple[str, str]] = [(st.short, "bold blue"),
                                            (f"● {label}" + (f" pid {pid}" if pid else ""), STATE_STYLE[state]),
                                            (f"{st.total:,} frames", "")]
            if j < len(self._journal_rates):
                parts.append((f"{self._journal_rates[j]:,.0f}/s", ""))
            if st.newest_time is not None:
                # a live writer's newest frame is "now minus lag": the lag alone keeps the line short
                if state == WriterState.ALIVE and self.state == "open":
                    parts.append((f"lag {format_lag(now - st.newest_time)}", "bold"))
                else:
                    parts.append((f"newest {format_time(st.newest_time, self.tz)}", "dim"))
            if j in self.holding and self._held_since.get(j, (None,))[0] == st.end:  # and not moved since then
                waits = ", ".join(idx.journals[k].short for k in range(len(idx.journals)) if k not in self.holding)
                limit = "until they write" if self.hold == float("inf") else f"up to {self.hold:g} s"
                parts.append((f"held back: waits for {waits} ({limit})", "bold yellow"))
            _wrap_phrases(t, parts, width)
        if hidden:
            alive = sum(1 for s in states if s[0] == WriterState.ALIVE)
            t.append(f"\n+{hidden} more journals ({alive} of {len(states)} writers alive)", "dim")
        if self.damage is not None:
            t.append("\n")
            t.append(f"DAMAGED: {self.damage}; showing the valid frames before it, the others go on", "bold red")
        self._append_readers(t)
        self.header_text = t.plain
        self.query_one(HeaderBar).update(t)

    def _update_status(self) -> None:
        table = self.table
        t = Text()
        if self._message:  # first: at 80 columns the end of the line is cut
            t.append(self._message, "bold italic")
            t.append("   ")
        if table.following:
            t.append("▶ following", "bold green")
        else:
            t.append("⏸ paused", "bold yellow")
            t.append(f" +{table.new_since_pause:,} new (End follows)")
        if table.count:
            t.append(f"   row {table.cursor + 1:,} of {table.count:,}")
        if not self.filter.trivial:
            parts = []
            if self.filter.types:
                parts.append("type=" + ",".join(self.registry.name(x) for x in self.filter.types))
            if self.filter.symbols:
                parts.append("symbol=" + ",".join(self.filter.symbols))
            t.append("   filter: " + " ".join(parts), "bold magenta")
        if self._search and not self._message:
            t.append(f"   search: {self._search!r}", "cyan")
        if table.hidden:
            t.append(f"   {len(table.hidden)} column(s) hidden: Enter shows all", "dim")
        self.status_text = t.plain
        self.query_one(StatusBar).update(t)

    # -- actions -----------------------------------------------------------------
    def on_frame_table_selected(self, event: FrameTable.Selected) -> None:
        if event.row != self._message_row:
            self._message = ""

    def say(self, message: str) -> None:
        """A message in the status line, until the cursor moves to another row."""
        self._message = message
        self._message_row = self.table.cursor

    def action_toggle_detail(self) -> None:
        detail = self.query_one(DetailPane)
        detail.toggle_class("shown")
        self._detail_row = None
        self._tick()

    def action_cycle_type(self) -> None:
        """All types -> each type the journal holds (registry order, then unknown ids) -> all types."""
        seen = self._types_seen | self.index.types_seen
        known = [mt.id for mt in self.registry.types()]
        ids = [i for i in known if i in seen] + sorted(seen - set(known))
        if not ids:
            self.say("no frames yet: no type to show")
            self._tick()
            return
        cur = self.filter.types
        if not cur or len(cur) != 1 or cur[0] not in ids:
            nxt = [ids[0]] if not cur else None
        else:
            i = ids.index(cur[0]) + 1
            nxt = [ids[i]] if i < len(ids) else None
        self.filter = RowFilter(nxt, self.filter.symbols)
        self._restart()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While the prompt is open its keys are text, not commands."""
        if action == "prompt" and self._prompt_open():
            return False
        return True

    def _prompt_open(self) -> bool:
        try:
            return self.query_one("#prompt", Input).has_class("shown")
        except Exception:  # noqa: BLE001 - before compose / after unmount there is no prompt
            return False

    def action_prompt(self, mode: str) -> None:
        prompt = self.query_one("#prompt", Input)
        self._prompt_mode = mode
        now = {"symbol": ",".join(self.filter.symbols or []) or "all", "search": self._search}.get(mode)
        prompt.placeholder = {
            "symbol": "symbols to show, comma separated; empty: all",
            "search": "search text (n: next, N: previous)",
            "time": "go to time: ns, ISO-8601, 13:03:05, +10s after the first frame, -5s before the last",
        }[mode] + (f" (now: {now})" if now else "")
        prompt.value = ""  # typing replaces; the current value is in the placeholder
        prompt.add_class("shown")
        prompt.display = True
        # focus now, not on the next message-loop turn: keys already queued behind this one go to the prompt
        self.screen.set_focus(prompt)

    def action_close_prompt(self) -> None:
        prompt = self.query_one("#prompt", Input)
        if prompt.has_class("shown"):
            prompt.remove_class("shown")
            prompt.display = False
            self.screen.set_focus(self.table)
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
            if value:
                self._search = value
                self.action_search(1)
        elif mode == "time" and value:
            self.goto_time(value)
        self._tick()

    def goto_time(self, text: str) -> None:
        """Select the first row at or after a time (pauses following)."""
        if self.reader is None:
            return
        idx = self.index
        if isinstance(idx, MergedIndex):
            first = idx.first_time
        else:
            first = idx.pages[0].first_time if idx.pages else None
        try:
            t = parse_time(text, first, last=self.index.newest_time, tz=self.tz)
        except KftoolsError as e:
            self.say(str(e))
            return
        row = self.index.row_at_time(self.reader, t)  # type: ignore[arg-type]  # the index's reader kind
        if row >= self.index.count:
            self.say(f"no frame at or after {format_time(t, self.tz)} yet")
            return
        self.table.select(row)
        if first is not None and t < first:
            self.say(f"{format_time(t, self.tz)} is before the recording (first frame {format_time(first, self.tz)}):"
                     " at the first row")
        else:
            self.say(f"at {format_time(t, self.tz)}")

    def action_search(self, direction: int) -> None:
        """Next (1) or previous (-1) row whose text contains the search, wrapping around.

        The rows are read in a worker thread with a reader of its own, so the screen stays live however
        many rows it reads; a new search (or n/N) cancels the one in progress.
        """
        needle = self._search.lower()
        if not needle:
            self.say("no search yet: / to search")
            self._tick()
            return
        table = self.table
        if self.reader is None or table.count == 0:
            self.say(f"{self._search!r}: no rows to search")
            self._tick()
            return
        count = table.count
        origin = table.cursor if table.cursor >= 0 else (count - 1 if direction > 0 else 0)
        self.say(f"searching {self._search!r}…")
        self._tick()
        self.run_worker(functools.partial(self._search_rows_in_worker, self.index, self._search, direction, origin,
                                          count), thread=True, exclusive=True, group="search")

    def _search_rows_in_worker(self, index, text: str, direction: int, origin: int, count: int) -> None:
        worker = get_current_worker()
        needle = text.lower()
        reader = self._open_reader()
        try:
            examined, chunk = 0, 1024
            row = origin + direction
            wrapped = not 0 <= row < count
            row %= count
            while examined < count:
                if worker.is_cancelled:
                    return
                n = min(chunk, count - examined)
                lo, hi = (row, min(row + n, count)) if direction > 0 else (max(0, row - n + 1), row + 1)
                try:
                    frames = index.frames(reader, lo, hi)
                except (KftoolsError, ValueError, IndexError, OSError):
                    frames = []  # a page vanished under us: nothing to match there
                names = ([index.journals[j].short for j in index.journal_of(lo, lo + len(frames))]
                         if isinstance(index, MergedIndex) else [])
                order = range(len(frames)) if direction > 0 else range(len(frames) - 1, -1, -1)
                for i in order:
                    cells = frame_cells(frames[i], self.tz) + names[i : i + 1]
                    if needle in " ".join(str(c) for c in cells).lower():
                        self.call_from_thread(self._search_done, index, text, lo + i, wrapped)
                        return
                examined += hi - lo
                nxt = hi if direction > 0 else lo - 1
                if not 0 <= nxt < count:
                    wrapped = True
                row = nxt % count
            self.call_from_thread(self._search_done, index, text, None, wrapped, count)
        finally:
            reader.close()

    def _search_done(self, index, text: str, row: int | None, wrapped: bool, count: int = 0) -> None:
        if index is not self.index:
            return  # a new filter replaced the rows meanwhile
        if row is None:
            self.say(f"{text!r} not found in {count:,} rows")
        else:
            self.table.select(row)
            self.say(f"found {text!r}" + (" (wrapped around)" if wrapped else ""))
        self._tick()


def _wrap_phrases(t: Text, phrases: list[tuple[str, str]], width: int) -> None:
    """Append phrases two spaces apart; one that would not fit starts a new line instead of being split."""
    line = 0
    for text, style in phrases:
        if line and line + 2 + len(text) > width:
            t.append("\n")
            line = 0
        elif line:
            t.append("  ")
            line += 2
        t.append(text, style)
        line += len(text)


def tail_types(paths: Sequence[str], registry: TypeRegistry, types) -> list[int] | None:
    """``--type`` for the live view, resolved in each journal's own types (Kungfu generations number them
    differently: ``Trade`` is 204 in a 2.4 journal, 203 in a later one). The view filters rows by one set of
    ids, so journals that number the names differently are refused: ``tail --plain`` reads each by its own."""
    from ..journal.filter import journal_types
    from ..journal.merge import open_journals

    if not types:
        return None
    try:
        reader = open_journals(list(paths), registry=registry)
    except KftoolsError:  # not there yet, or unreadable: the view says so itself; the names by --schema
        reader = None
    if reader is None:
        per = journal_types([registry], types)
    else:
        try:
            regs = [r.registry for r in reader.readers] if isinstance(reader, MergedReader) else [reader.registry]
            per = journal_types(regs, types)
        finally:
            reader.close()
    if per is None:
        return None
    if len(set(per)) > 1:
        raise UsageError(f"--type {','.join(map(str, types))}: these journals number it differently (Kungfu "
                         "generations), and the live view filters one set of ids; tail --plain reads each journal "
                         "by its own types")
    return list(per[0])


def probe(path: str, registry: TypeRegistry) -> None:
    """Raise the error a bad journal deserves before the screen opens; a missing one is waited for."""
    from ..journal.page import NotYetWritten

    try:
        Reader(path, registry=registry).close()
    except NotYetWritten:
        pass
