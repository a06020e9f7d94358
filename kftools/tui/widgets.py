"""Widgets of the live view. They render what they are given; none of them reads files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from ..journal.format import FRAME_HEADER, OrderType, Side
from ..journal.reader import Frame
from ..timeparse import format_time

_PRICE = ("price", "last_price", "bid_price", "bid", "ask_price", "ask")
_SIZE = ("quantity", "volume", "size", "qty", "bid_size")
_ID = ("order_id", "trade_id", "id")
TYPE_STYLES = {"Ticker": "cyan", "Order": "yellow", "Trade": "green"}
COLUMNS: list[tuple[str, int | None, JustifyMethod]] = [  # (title, width, justify)
    ("time", 18, "left"), ("type", 7, "left"), ("symbol", 9, "left"), ("price", 11, "right"),
    ("size", 9, "right"), ("side", 4, "left"), ("order id", 9, "right"), ("src>dst", 7, "right"), ("more", None, "left"),
]


def clock(ns: int) -> str:
    """Time of day with microseconds (the date is in the header)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%H:%M:%S") + f".{frac // 1000:06d}"


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 1e12 else f"{v:.6g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _first(fields: dict, names: tuple) -> tuple[str | None, object]:
    for n in names:
        if n in fields:
            return n, fields[n]
    return None, None


def frame_cells(frame: Frame) -> list[Text | str]:
    """The table cells of one frame: time, type, symbol, key fields, source>dest, the rest."""
    f = frame.fields
    name = frame.type_name
    pk, price = _first(f, _PRICE)
    sk, size = _first(f, _SIZE)
    ik, oid = _first(f, _ID)
    side = f.get("side")
    side_txt = Text("")
    if side in (0, 1) and "side" in f:
        side_txt = Text("buy", "green") if side == Side.BUY else Text("sell", "red")
    used = {pk, sk, ik, "side", "symbol", "reserved"}
    if f:
        more = " ".join(f"{k}={_num(v)}" for k, v in f.items() if k not in used)
    else:
        payload = frame.payload
        more = f"payload {payload[:16].hex()}{'…' if len(payload) > 16 else ''} ({len(payload)} B)"
    return [
        clock(frame.gen_time),
        Text(name, TYPE_STYLES.get(name, "magenta")),
        Text(str(f.get("symbol", "")), "bold"),
        "" if price is None else _num(price),
        "" if size is None else _num(size),
        side_txt,
        "" if oid is None else str(oid),
        f"{frame.source}>{frame.dest}",
        Text(more, "dim"),
    ]


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

    def __init__(self, fetch: Callable[[int, int], list[Frame]], **kw):
        super().__init__(**kw)
        self.fetch = fetch
        self.count = 0
        self.top = 0
        self.cursor = -1  # selected row, -1: none yet
        self.paused_at = 0  # row count when following paused

    # -- state -----------------------------------------------------------------
    @property
    def visible_rows(self) -> int:
        return max(1, self.size.height - 1)

    @property
    def new_since_pause(self) -> int:
        return 0 if self.following else max(0, self.count - self.paused_at)

    def set_count(self, count: int) -> None:
        """Rows available now (called by the app at its refresh rate)."""
        changed = count != self.count
        self.count = count
        if self.following:
            self._to_bottom()
        elif self.cursor >= count:
            self.cursor = count - 1
        if changed:
            self.refresh()

    def reset(self) -> None:
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
    def render(self) -> Table:
        table = Table(box=None, expand=True, padding=(0, 1), header_style="bold", show_edge=False, pad_edge=False)
        for title, width, justify in COLUMNS:
            table.add_column(title, width=width, justify=justify, no_wrap=True, overflow="ellipsis", ratio=None if width else 1)
        frames = self.fetch(self.top, self.top + self.visible_rows) if self.count else []
        for i, fr in enumerate(frames):
            row = self.top + i
            table.add_row(*frame_cells(fr), style="reverse" if row == self.cursor else None)
        return table


class HeaderBar(Static):
    """Path, pages, frames, rate, lag and the writer's state."""

    DEFAULT_CSS = "HeaderBar { height: 2; background: $boost; padding: 0 1; }"


class StatusBar(Static):
    DEFAULT_CSS = "StatusBar { height: 1; padding: 0 1; background: $panel; }"


def hexdump(data: bytes, width: int = 16) -> str:
    lines = []
    for i in range(0, len(data), width):
        chunk = data[i : i + width]
        hexs = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{i:04x}  {hexs:<{width * 3 - 1}}  {text}")
    return "\n".join(lines)


def frame_detail(frame: Frame) -> Table:
    """Every header and payload field of a frame, and its raw bytes in hex."""
    fields = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    fields.add_column(style="bold cyan", no_wrap=True, min_width=15)
    fields.add_column(overflow="fold")
    fields.add_row("position", f"page {frame.page_index} offset {frame.offset:,}")
    fields.add_row("type", f"{frame.type_name} ({frame.msg_type})")
    for n in FRAME_HEADER.names:
        if n == "msg_type":
            continue
        v = getattr(frame, n)
        if n.endswith("_time"):
            fields.add_row(n, f"{format_time(v)} ({v})")
        else:
            fields.add_row(n, str(v))
    for k, v in frame.fields.items():
        if k == "side" and v in (0, 1):
            v = f"{Side(v).name.lower()} ({v})"
        elif k == "order_type" and v in (0, 1):
            v = f"{OrderType(v).name.lower()} ({v})"
        fields.add_row(k, _num(v) if not isinstance(v, str) else repr(v))
    outer = Table(box=None, show_header=False, padding=(0, 2), expand=True)
    outer.add_column(min_width=40)
    outer.add_column(width=72)
    outer.add_row(fields, Text(hexdump(frame.raw), style="dim"))
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

    def compose(self):
        yield Static("frames/s", classes="label", id="fps-label")
        yield Sparkline([], id="fps-spark")

    def update_fps(self, series: list[float], current: float) -> None:
        self.query_one("#fps-label", Static).update(Text.assemble(("frames/s ", "bold"), f"{current:,.0f}"))
        self.query_one("#fps-spark", Sparkline).data = list(series)

    def update_prices(self, prices: dict[str, tuple[list[float], float]]) -> None:
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
            label.update(Text.assemble((f"{sym:<8}", "bold"), f"{_num(last):>12} ", arrow))
            spark.data = series
