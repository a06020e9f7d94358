"""Widgets of the live view. They render what they are given; none of them reads files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.visual import VisualType
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from ..journal.format import FRAME_HEADER, Side
from ..journal.reader import Frame
from ..render import exact, json_payload, labelled_fields
from ..timeparse import format_clock, format_optional_time

_PRICE = ("price", "last_price", "limit_price")
_BID = ("bid_price", "bid")
_ASK = ("ask_price", "ask")
_SIZE = ("quantity", "volume", "size", "qty")
_ID = ("order_id", "trade_id", "id")
TYPE_STYLES = {"Ticker": "cyan", "Order": "yellow", "Trade": "green"}


@dataclass(frozen=True)
class Column:
    title: str
    justify: JustifyMethod
    priority: float  # narrow screens drop the highest numbers first (equal numbers go together: bid and ask)


#: display order; "more" (every other field) takes what width is left
COLUMNS = [
    Column("time", "left", 0), Column("type", "left", 1), Column("symbol", "left", 2), Column("side", "left", 5),
    Column("price", "right", 3), Column("size", "right", 4), Column("bid", "right", 3.5), Column("ask", "right", 3.5),
    Column("id", "right", 7), Column("src>dst", "right", 8), Column("more", "left", 9),
]
#: several journals: which one each row comes from, right after the time
JOURNAL_COLUMN = Column("journal", "left", 1.5)
MERGED_COLUMNS = [COLUMNS[0], JOURNAL_COLUMN, *COLUMNS[1:]]
_MORE_MIN = 12


def clock(ns: int, tz: dt.tzinfo | None = None) -> str:
    """Time of day with microseconds (the date is in the header)."""
    return format_clock(ns, tz)


def _num(v) -> str:
    """Exact: a float as the shortest text that reads back to it, never rounded for the screen."""
    return exact(v)


def _first(fields: dict, names: tuple) -> tuple[str | None, object]:
    for n in names:
        if n in fields:
            return n, fields[n]
    return None, None


def frame_cells(frame: Frame, tz: dt.tzinfo | None = None) -> list[Text | str]:
    """The cells of one frame, in COLUMNS order."""
    f = frame.fields
    name = frame.type_name
    keys = {}
    values = []
    for names in (_PRICE, _SIZE, _BID, _ASK, _ID):
        k, v = _first(f, names)
        if isinstance(v, list):  # Kungfu's ten bid/ask levels: the best one
            v = v[0] if v else None
        keys[k] = True
        values.append("" if v is None else _num(v))
    price, size, bid, ask, oid = values
    side = f.get("side")
    side_txt = Text("")
    if "side" in f:
        label = str(labelled_fields(frame)["side"])
        side_txt = Text(label, "green" if side == Side.BUY else "red" if side == Side.SELL else "")
    symbol = frame.page.registry.symbol_field  # Kungfu's instrument_id
    used = set(keys) | {"side", symbol, "reserved"}
    if f:
        more = " ".join(f"{k}={_num(v)}" for k, v in labelled_fields(frame).items() if k not in used)
    elif (text := json_payload(frame)) is not None:  # Kungfu's JSON frames
        more = text
    else:
        payload = frame.payload
        more = f"payload {payload[:16].hex()}{'…' if len(payload) > 16 else ''} ({len(payload)} B)"
    return [
        clock(frame.gen_time, tz),
        Text(name, TYPE_STYLES.get(name, "magenta")),
        Text(str(f.get(symbol, "")), "bold"),
        side_txt,
        price,
        size,
        bid,
        ask,
        oid,
        f"{frame.source}>{frame.dest}",
        Text(more, "dim"),
    ]


def fit_columns(widths: list[int], available: int, gap: int = 2, columns: list[Column] = COLUMNS) -> list[int]:
    """Indexes of the columns that fit in ``available`` cells, dropping the least important first.

    Exact numbers are never cut to fit: a column is shown whole or not at all
    (``more`` alone may be cut, with an ellipsis). ``gap``: cells between two columns (the table pads
    each column by one on both sides).
    """
    shown = list(range(len(columns)))
    while shown:
        need = sum(widths[i] if columns[i].title != "more" else _MORE_MIN for i in shown) + gap * (len(shown) - 1)
        if need <= available:
            break
        worst = max(columns[i].priority for i in shown)
        shown = [i for i in shown if columns[i].priority != worst]
    return shown


def fit_layout(widths: list[int], available: int, columns: list[Column] = COLUMNS) -> tuple[list[int], int]:
    """(columns shown, gap): two cells between columns, or one when only that keeps bid and ask (at 80
    columns their exact prices, often long, fit only so)."""
    wide = fit_columns(widths, available, 2, columns)
    quotes = {i for i, c in enumerate(columns) if c.title in ("bid", "ask")}
    if quotes <= set(wide):
        return wide, 2
    tight = fit_columns(widths, available, 1, columns)
    return (tight, 1) if quotes <= set(tight) else (wide, 2)


def _fit(cell: Text | str, width: int, justify: JustifyMethod) -> Text:
    """A cell at exactly ``width`` cells, as a Rich table column (``no_wrap``, ``overflow="ellipsis"``) fits it."""
    plain, style = (cell, "") if isinstance(cell, str) else (cell.plain, cell.style)
    if (isinstance(cell, str) or not cell.spans) and plain.isascii() and plain.isprintable() and len(plain) <= width:
        # the common cell, short plain text: padded at once (one character a cell)
        if justify == "right":
            plain = plain.rstrip()
            return Text(" " * (width - len(plain)) + plain, style)
        return Text(plain + " " * (width - len(plain)), style)
    text = Text(cell) if isinstance(cell, str) else cell.copy()
    text.rstrip_end(width)
    if justify == "right":
        text.rstrip()
        text.truncate(width, overflow="ellipsis")
        text.pad_left(width - text.cell_len)
    else:
        text.truncate(width, overflow="ellipsis", pad=True)
    return text


class FrameTable(Widget, can_focus=True):
    """A virtual table: only the visible rows are fetched (``fetch(start, stop)``) and decoded.

    It follows the bottom until the user scrolls up; ``End`` resumes following.
    """

    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "PgUp", show=False),
        Binding("pagedown", "page(1)", "PgDn", show=False),
        Binding("home", "top", "Top"),
        Binding("end", "follow", "Follow"),
    ]
    DEFAULT_CSS = "FrameTable { height: 1fr; width: 1fr; }"

    following = reactive(True)

    class Selected(Message):
        """The selected row changed (or following moved it)."""

        def __init__(self, row: int | None):
            super().__init__()
            self.row = row

    def __init__(self, fetch: Callable[[int, int], list[Frame]], tz: dt.tzinfo | None = None,
                 journals: Callable[[int, int], list[str]] | None = None,
                 rows: Callable[[], int] | None = None, **kw):
        """``journals(start, stop)``: the journal of each of those rows (several journals: a journal column);
        ``rows()``: the rows available now, read as a screen is drawn while following (rows counted since the
        last :meth:`set_count` are drawn at once, not a refresh later)."""
        super().__init__(**kw)
        self.fetch = fetch
        self.rows = rows
        self.journals = journals
        self.columns = COLUMNS if journals is None else MERGED_COLUMNS
        self.tz = tz
        self.widths = [len(c.title) for c in self.columns]  # grow-only, so columns do not jump while scrolling
        self.hidden: list[str] = []  # titles of the columns too wide for the screen now
        self.count = 0
        self.top = 0
        self.cursor = -1  # selected row, -1: none yet
        self.paused_at = 0  # row count when following paused
        #: what the last render drew: its first row and those rows' frames (what is on screen, for tests and probes)
        self.drawn: tuple[int, list[Frame]] = (0, [])

    # -- state -----------------------------------------------------------------
    @property
    def visible_rows(self) -> int:
        return max(1, self.size.height - 1)

    @property
    def new_since_pause(self) -> int:
        return 0 if self.following else max(0, self.count - self.paused_at)

    def set_count(self, count: int) -> None:
        """Rows available now (called by the app at its refresh rate)."""
        if self._count_to(count):
            self.refresh()

    def _count_to(self, count: int) -> bool:
        changed = count != self.count
        self.count = count
        if self.following:
            self._to_bottom()
        elif self.cursor >= count:
            self.cursor = count - 1
        return changed

    def reset(self) -> None:
        self.widths = [len(c.title) for c in self.columns]
        self.count = self.top = 0
        self.cursor = -1
        self.following = True
        self.refresh()

    def _to_bottom(self) -> None:
        last = self.count - 1
        if last != self.cursor:
            self.cursor = last
            self.post_message(self.Selected(last if last >= 0 else None))
        self.top = max(0, self.count - self.visible_rows)

    def _pause(self) -> None:
        if self.following:
            self.following = False
            self.paused_at = self.count

    def select(self, row: int) -> None:
        """Select ``row`` (pauses following unless it is the last row) and scroll it into view."""
        if self.count == 0:
            return
        row = min(max(0, row), self.count - 1)
        if row < self.count - 1:
            self._pause()
        self.cursor = row
        if row < self.top:
            self.top = row
        elif row >= self.top + self.visible_rows:
            self.top = row - self.visible_rows + 1
        self.post_message(self.Selected(row))
        self.refresh()

    # -- actions ---------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        if delta < 0:
            self._pause()
        self.select(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        if direction < 0:
            self._pause()
        self.select(self.cursor + direction * self.visible_rows)

    def action_top(self) -> None:
        self._pause()
        self.top = 0
        self.select(0)

    def action_follow(self) -> None:
        self.following = True
        self._to_bottom()
        self.refresh()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._pause()
        self.top = max(0, self.top - 3)
        self.refresh()
        event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.top = min(max(0, self.count - self.visible_rows), self.top + 3)
        self.refresh()
        event.stop()

    def on_click(self, event: events.Click) -> None:
        row = self.top + event.y - 1
        if 0 <= row < self.count and event.y >= 1:
            self.select(row)

    def on_resize(self, event: events.Resize) -> None:
        if self.following:
            self._to_bottom()
        elif self.cursor >= self.top + self.visible_rows:
            self.top = self.cursor - self.visible_rows + 1
        self.refresh()

    # -- rendering -------------------------------------------------------------
    def render(self) -> RenderableType:
        if self.following:
            if self.rows is not None:
                self._count_to(self.rows())
            # the bottom for the size drawn now: a count set before the first layout used no size
            self.top = max(0, self.count - self.visible_rows)
        frames = self.fetch(self.top, self.top + self.visible_rows) if self.count else []
        rows = [frame_cells(fr, self.tz) for fr in frames]
        if self.journals is not None and rows:
            names = self.journals(self.top, self.top + len(rows))
            if len(names) != len(rows):  # the index was replaced meanwhile (a new filter): draw nothing stale
                rows = []
            for cells, name in zip(rows, names, strict=False):
                cells.insert(1, Text(name, "blue"))
        self.drawn = (self.top, frames[: len(rows)])
        columns = self.columns
        for cells in rows:
            for i, c in enumerate(cells):
                self.widths[i] = max(self.widths[i], len(c))
        shown, gap = fit_layout(self.widths, self.size.width, columns)
        self.hidden = [c.title for i, c in enumerate(columns) if i not in shown and any(len(r[i]) for r in rows)]
        return Group(*self._lines(rows, shown, gap))

    def _lines(self, rows: list[list[Text | str]], shown: list[int], gap: int) -> list[Text]:
        """The header and ``rows`` as lines, laid out as Rich's ``Table(box=None, pad_edge=False)`` would (cells
        padded ``gap // 2`` on the right and 1 on the left but at the edges, ``more`` taking the width left, cut
        with an ellipsis; the selected row reversed, the header bold), built directly: a Table measures and pads
        each cell through several renderables, 30-40 ms a screen on this machine, most of what a jump cost."""
        columns = [self.columns[i] for i in shown]
        last = len(columns) - 1
        pads = [(1 if j else 0, 1 if gap == 2 and j < last else 0) for j in range(len(columns))]
        widths = [self.widths[i] for i in shown]
        for j, col in enumerate(columns):
            if col.title == "more":  # the table spans the screen; without `more` it is as wide as its columns
                widths[j] = max(0, self.size.width - sum(w for k, w in enumerate(widths) if k != j)
                                - sum(a + b for a, b in pads))

        def line(cells: list[Text | str], style: str) -> Text:
            out = Text(style=style, justify="default", no_wrap=True, overflow="crop")
            for (left, right), width, col, cell in zip(pads, widths, columns, cells, strict=True):
                out.append(" " * left)
                out.append_text(_fit(cell, width, col.justify))
                out.append(" " * right)
            return out

        lines = [line([c.title for c in columns], "bold")]
        for k, cells in enumerate(rows):
            lines.append(line([cells[i] for i in shown], "reverse" if self.top + k == self.cursor else ""))
        return lines


class _TextLine(Static):
    """Text the app sets at its refresh rate. Set again unchanged it is not drawn again, and it is laid out again
    only when its height may change: a layout of the screen costs 10-40 ms here, and would land on the frame a
    keypress waits for."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._shown: object = None

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if isinstance(content, Text):
            if content == self._shown:
                return
            layout = layout and self._reflows(content)
        self._shown = content
        super().update(content, layout=layout)

    def _reflows(self, content: Text) -> bool:
        """Whether ``content`` may take another height than what is shown: another count of lines, or a line
        too long for the width (it wraps)."""
        old = self._shown
        if not isinstance(old, Text):
            return True
        lines, before = content.plain.split("\n"), old.plain.split("\n")
        width = self.content_region.width
        return len(lines) != len(before) or any(cell_len(x) > width for x in (*lines, *before))


class HeaderBar(_TextLine):
    """Path, pages, frames, rate, lag and the writer's state; a third line for named readers."""

    DEFAULT_CSS = "HeaderBar { height: auto; max-height: 8; background: $boost; padding: 0 1; }"


class StatusBar(_TextLine):
    DEFAULT_CSS = "StatusBar { height: 1; padding: 0 1; background: $panel; }"

    def _reflows(self, content: Text) -> bool:
        return False  # one line, whatever it says


def hexdump(data: bytes, width: int = 16) -> str:
    lines = []
    for i in range(0, len(data), width):
        chunk = data[i : i + width]
        hexs = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{i:04x}  {hexs:<{width * 3 - 1}}  {text}")
    return "\n".join(lines)


def frame_detail(frame: Frame, tz: dt.tzinfo | None = None, width: int = 140,
                 journal: str | None = None) -> RenderableType:
    """Every header and payload field of a frame, and its raw bytes in hex (beside them, or below when narrow);
    ``journal``: the journal it comes from (several journals)."""
    fields = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    fields.add_column(style="bold cyan", no_wrap=True, min_width=15)
    fields.add_column(overflow="fold")
    if journal is not None:
        fields.add_row("journal", journal)
    fields.add_row("position", f"page {frame.page_index} offset {frame.offset:,}")
    fields.add_row("type", f"{frame.type_name} ({frame.msg_type})")
    for n in FRAME_HEADER.names:
        if n == "msg_type":
            continue
        v = getattr(frame, n)
        if n.endswith("_time"):
            fields.add_row(n, f"{format_optional_time(v, tz)} ({v})")
        else:
            fields.add_row(n, str(v))
    labels = labelled_fields(frame)
    for k, v in frame.fields.items():
        if isinstance(v, str):
            shown = repr(v)
        elif labels[k] != v:
            shown = f"{labels[k]} ({v})"
        else:
            shown = _num(v)
        fields.add_row(k, shown)
    dump = Text(hexdump(frame.raw), style="dim")
    if width < 40 + 2 + 72:
        return Group(fields, Text(""), dump)
    outer = Table(box=None, show_header=False, padding=(0, 2), expand=True)
    outer.add_column(min_width=40)
    outer.add_column(width=72)
    outer.add_row(fields, dump)
    return outer


class DetailPane(Static):
    DEFAULT_CSS = """
    DetailPane { height: 14; border-top: solid $accent; padding: 0 1; display: none; overflow-y: auto; }
    DetailPane.shown { display: block; }
    """


class SparkPanel(Widget):
    """The frames-per-second sparkline and one last-price sparkline per symbol."""

    DEFAULT_CSS = """
    SparkPanel { width: 34; border-left: solid $accent; padding: 0 1; }
    SparkPanel .label { height: 1; }
    SparkPanel Sparkline { height: 2; margin-bottom: 1; }
    """
    MAX_SYMBOLS = 8

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._symbols: dict[str, tuple[Static, Sparkline]] = {}
        # held, not queried: the app's timer updates them also before they are mounted and while they are removed
        self._fps_label = Static("frames/s", classes="label", id="fps-label")
        self._fps_spark = Sparkline([], id="fps-spark")

    def compose(self):
        yield self._fps_label
        yield self._fps_spark

    def update_fps(self, series: list[float], current: float) -> None:
        self._fps_label.update(Text.assemble(("frames/s ", "bold"), f"{current:,.0f}"))
        self._fps_spark.data = list(series)

    def update_prices(self, prices: dict[str, tuple[list[float], float]]) -> None:
        for sym in [s for s in self._symbols if s not in prices]:  # filtered out (or not sampled again yet)
            for w in self._symbols.pop(sym):
                w.remove()
        for sym in sorted(prices)[: self.MAX_SYMBOLS]:
            series, last = prices[sym]
            if sym not in self._symbols:
                label = Static(classes="label")
                spark = Sparkline([])
                self._symbols[sym] = (label, spark)
                self.mount(label, spark)
            label, spark = self._symbols[sym]
            trend = series[-1] - series[0] if len(series) > 1 else 0.0
            arrow = ("▲", "green") if trend > 0 else ("▼", "red") if trend < 0 else ("•", "dim")
            label.update(Text.assemble(arrow, " ", (f"{sym:<8}", "bold"), " ", _num(last)))
            spark.data = series
