"""Frame objects and the per-frame reading loop, in C when the extension is built, else in Python.

A frame's header fields are plain values fixed when the frame is made; its
payload fields decode on first access. Frames come out of a *frame stream*:
an iterator that yields the frames at offsets fed to it (a snapshot, already
validated by the batch scanner), then, with a live page attached, spins on
the page's write cursor and validates and yields each frame as it is
committed. When it runs dry it calls ``refill(stream)`` with ``stream.status``
saying why; the reader's refill feeds the next batch, rolls to the next page,
sleeps, or ends the iteration by returning False.

``_framestream.c`` is the C implementation and :class:`PyFrameStream` / :class:`PyFrame`
its pure-Python twin; the tests run both (``IMPLEMENTATIONS``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import yijinjing
from .format import FRAME_HEADER, pack_position
from .yijinjing import json_text

# why refill was called (the C stream uses the same numbers)
STATUS_OK = 0  # iterating
STATUS_EMPTY = 1  # nothing fed is left and no live page is attached
STATUS_IDLE = 2  # live: no new frame after ``spins`` cursor loads
STATUS_BACKLOG = 3  # live: the cursor moved more than ``live_max`` bytes ahead (``stream.cursor``)
STATUS_BAD_CURSOR = 4  # live: the cursor is past the page's limit
STATUS_BAD_FRAME = 5  # live: the frame at ``stream.offset`` is invalid

#: where the C side finds each header field: (header size, offsets of length .. dest)
HEADER_FIELDS = ("length", "msg_type", "gen_time", "trigger_time", "source", "dest")
HEADER_SPEC = (FRAME_HEADER.size, *(FRAME_HEADER.offset(n) for n in HEADER_FIELDS))
assert FRAME_HEADER.names == HEADER_FIELDS, "the frame classes hold exactly the header's fields"
assert [FRAME_HEADER.field(n).kind for n in HEADER_FIELDS] == ["u32", "u32", "i64", "i64", "u32", "u32"]

_HEADER_FROM = FRAME_HEADER.struct.unpack_from
#: the scanner's table of minimum payload lengths holds frame lengths
_LENGTH_DTYPE = FRAME_HEADER.field("length").numpy_code


class FrameMethods:
    """What every frame offers beyond its header fields (shared by the C and Python frames)."""

    __slots__ = ()
    # provided by the concrete frame class
    page: Any
    offset: int
    length: int
    msg_type: int
    gen_time: int
    trigger_time: int
    source: int
    dest: int
    _f: dict | None

    @property
    def page_index(self) -> int:
        return self.page.index

    @property
    def journal(self) -> str:
        """The journal this frame is in: its reader's name for it (the path of its first page as the reader was
        given it, a Kungfu journal's location and dest, or the label the resolver gave it)."""
        p = self.page
        if p.journal is not None:
            return p.journal
        if not p.fmt.native:
            return yijinjing.find_journals(p.path)[0].name  # a Kungfu journal: its location and dest
        return p.path if p.index == 0 else p.path[: -len(str(p.index)) - 1]

    @property
    def type_name(self) -> str:
        return self.page.registry.name(self.msg_type)

    @property
    def payload(self) -> bytes:
        start = self.offset + self.page.frame_header_size
        return self.page.mm[start : start + self.length]

    @property
    def raw(self) -> bytes:
        """Header and payload bytes exactly as stored."""
        return self.page.mm[self.offset : self.offset + self.page.frame_header_size + self.length]

    @property
    def fields(self) -> dict:
        """Payload fields by name (text without NUL padding); empty for unknown types."""
        f = self._f
        if f is None:
            mt = self.page.registry.get(self.msg_type)
            f = mt.layout.unpack(self.page.mm, self.offset + self.page.frame_header_size) if mt else {}
            self._f = f  # type: ignore[misc]  # the concrete frame classes hold _f
        return f

    def _field(self, name: str):
        """A payload field by attribute name (the fallback of attribute lookup)."""
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(f"{self.type_name} frame has no field {name!r}") from None

    def to_dict(self) -> dict:
        """Header and payload fields; unknown payloads as ``payload`` (hex)."""
        d = {
            "type": self.type_name,
            "msg_type": self.msg_type,
            "gen_time": self.gen_time,
            "trigger_time": self.trigger_time,
            "source": self.source,
            "dest": self.dest,
        }
        f = self.fields
        registry = self.page.registry
        if f or registry.get(self.msg_type):
            d.update(f)
        elif registry.json_text and (text := json_text(self.payload)) is not None:
            d["text"] = text
        else:
            d["payload"] = self.payload.hex()
        return d

    def __repr__(self) -> str:
        return f"<Frame {self.type_name} page={self.page.index} offset={self.offset} gen_time={self.gen_time}>"


class PyFrame(FrameMethods):
    """One committed frame (pure Python). Header fields are attributes; payload fields decode on first access.

    A frame refers into the reader's mapping: copy what you keep with ``to_dict()``.
    """

    __slots__ = ("page", "_h", "_f")

    def __init__(self, page, header: tuple):
        """``header`` is ``(offset, length, msg_type, gen_time, trigger_time, source, dest)``."""
        self.page = page
        self._h = tuple(header)
        self._f = None

    # read-only, as the C frame's
    offset = property(lambda self: self._h[0], doc="offset of the frame inside its page")
    length = property(lambda self: self._h[1], doc="payload length in bytes")
    msg_type = property(lambda self: self._h[2])
    gen_time = property(lambda self: self._h[3])
    trigger_time = property(lambda self: self._h[4])
    source = property(lambda self: self._h[5])
    dest = property(lambda self: self._h[6])

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._field(name)


class PyFrameStream:
    """The pure-Python twin of ``_framestream.FrameStream``: same contract, same statuses."""

    def __init__(self, frame_type: type, refill: Callable[[Any], bool], header_spec: tuple = HEADER_SPEC):
        if tuple(header_spec) != HEADER_SPEC:
            raise ValueError("PyFrameStream reads the declared frame header only")
        self._make = frame_type
        self._refill = refill
        self._size = header_spec[0]
        self._queue: list[int] = []
        self._qi = 0
        self._q_page: Any = None
        self._q_buf: Any = None
        self.page: Any = None
        self._buf: Any = None
        self._off = self._cur = 0
        self.cursor = 0
        self.status = STATUS_OK
        self._done = False
        self._in_refill = False
        self._cell: Any = None  # a named follower's position cell (see publish)
        self._cell_views: list[memoryview] = []
        self._pending: int | None = None

    def feed(self, page, buf, offsets) -> None:
        offs = np.asarray(offsets, dtype=np.int64).tolist()
        for o in offs:
            if o < 0 or o + self._size > len(buf):
                raise ValueError(f"feed: offset {o} is outside the page")
        self._q_page, self._q_buf, self._queue, self._qi = page, buf, offs, 0

    def attach(self, page, buf, offset: int, limit: int, min_lengths, large, spins: int, live_max: int,
               cursor_offset: int, *, park_ns: int = 0, header=None, waiters_offset: int = -1,
               flags_offset: int = -1, sealed_mask: int = 0) -> None:
        if cursor_offset < 0 or cursor_offset + 4 > len(buf) or cursor_offset % 4 or offset < 0 or park_ns < 0:
            raise ValueError("attach: bad cursor offset, start offset, park_ns or header")
        self.page, self._buf = page, buf
        mins = np.asarray(min_lengths).view(_LENGTH_DTYPE) if len(min_lengths) else np.zeros(0, _LENGTH_DTYPE)
        self._mins = mins.tolist()
        self._large = dict(large) if large else {}
        self._off = self._cur = self.cursor = offset
        self._limit = min(limit, len(buf))
        self._spins = max(1, spins)
        self._live_max = live_max
        self._cursor_at = cursor_offset
        self._park_s = park_ns / 1e9  # no futex here: a parked wait is a timed sleep (no writer wakes it)
        self._sealed_at, self._sealed_mask = flags_offset, sealed_mask
        self.status = STATUS_OK

    def detach(self) -> None:
        self.page = self._buf = None

    def close(self) -> None:
        self._done = True
        self._queue, self._qi = [], 0
        self.detach()
        self._pending = None
        for v in self._cell_views:  # the cell's owner may release it only once no view of it is left
            v.release()
        self._cell, self._cell_views = None, []
        on_close = getattr(self._refill, "on_close", None)
        if on_close is not None and not self._in_refill:
            on_close()

    def publish(self, cell) -> None:
        """Store ``pack_position(page, offset)`` of each consumed frame (when the next is asked for) into ``cell``."""
        view = memoryview(cell)
        if view.nbytes != 8 or view.readonly:
            view.release()
            raise ValueError("publish: the cell must be 8 aligned bytes")
        as_bytes = view.cast("B")
        self._cell = as_bytes.cast("Q")
        self._cell_views = [self._cell, as_bytes, view]

    def __del__(self) -> None:
        self.close()

    @property
    def offset(self) -> int:
        return self._off

    @offset.setter
    def offset(self, value: int) -> None:
        if value < 0:
            raise ValueError("offset must be >= 0")
        self._off = self._cur = value

    def __iter__(self) -> PyFrameStream:
        return self

    def _load_cursor(self) -> int:
        at = self._cursor_at
        return int.from_bytes(self._buf[at : at + 4], "little")

    def _sealed(self) -> bool:
        at = self._sealed_at
        return at >= 0 and bool(int.from_bytes(self._buf[at : at + 4], "little") & self._sealed_mask)

    def _bad_frame(self) -> bool:
        room = self._cur - self._off
        if room < self._size:
            return True
        length, msg_type = _HEADER_FROM(self._buf, self._off)[:2]
        if length > room - self._size or msg_type == 0:
            return True
        if msg_type < len(self._mins):
            return length < self._mins[msg_type]
        return length < self._large.get(msg_type, 0)

    def __next__(self):
        if self._in_refill:
            raise ValueError("frame stream already executing")
        if self._pending is not None:
            self._cell[0] = self._pending  # the frame handed out last is consumed
            self._pending = None
        while True:
            if self._done:
                raise StopIteration
            if self._qi < len(self._queue):
                off = self._queue[self._qi]
                self._qi += 1
                if self._cell is not None:
                    self._pending = pack_position(self._q_page.index, off)
                return self._make(self._q_page, (off, *_HEADER_FROM(self._q_buf, off)))
            self._queue, self._qi, self._q_page, self._q_buf = [], 0, None, None
            if self.page is not None:
                if self._off < self._cur:
                    if not self._bad_frame():
                        off = self._off
                        h = _HEADER_FROM(self._buf, off)
                        self._off += self._size + h[0]
                        if self._cell is not None:
                            self._pending = pack_position(self.page.index, off)
                        return self._make(self.page, (off, *h))
                    self.status = STATUS_BAD_FRAME
                else:
                    c = self._load_cursor()
                    n = self._spins
                    while c <= self._off and n > 1:
                        c = self._load_cursor()
                        n -= 1
                    if c <= self._off and self._park_s and not self._sealed():
                        time.sleep(self._park_s)
                        c = self._load_cursor()
                    self.cursor = c
                    if c <= self._off:
                        self.status = STATUS_IDLE
                    elif c > self._limit:
                        self.status = STATUS_BAD_CURSOR
                    elif c - self._off > self._live_max:
                        self.status = STATUS_BACKLOG
                    else:
                        self._cur = c
                        continue
            else:
                self.status = STATUS_EMPTY
            self._in_refill = True
            try:
                go = self._refill(self)
            finally:
                self._in_refill = False
            self.status = STATUS_OK
            if not go:
                self.close()
                raise StopIteration


IMPLEMENTATIONS: dict[str, tuple[type, Any]] = {"python": (PyFrame, PyFrameStream)}
try:
    from . import _framestream  # type: ignore[attr-defined]  # the C extension setup.py builds; no stub

    class CFrame(_framestream.FrameBase, FrameMethods):  # type: ignore[misc,name-defined]
        """One committed frame. Header fields are attributes; payload fields decode on first access.

        A frame refers into the reader's mapping: copy what you keep with ``to_dict()``.
        """

        __slots__ = ()

    CFrame.__name__ = CFrame.__qualname__ = "Frame"  # as users know it (kftools.Frame)
    IMPLEMENTATIONS["c"] = (CFrame, _framestream.FrameStream)
    NATIVE = True
except ImportError:  # pragma: no cover - the extension is built by pip install
    NATIVE = False

if TYPE_CHECKING:
    Frame = PyFrame  # what every frame offers, for the type checker
else:
    Frame = IMPLEMENTATIONS["c" if NATIVE else "python"][0]
_active = IMPLEMENTATIONS["c" if NATIVE else "python"]


def use(implementation: str) -> None:
    """Make readers use the ``"c"`` or ``"python"`` frames from now on (the tests run both)."""
    global _active
    _active = IMPLEMENTATIONS[implementation]


def stream(refill: Callable[[Any], bool]):
    """A new frame stream calling ``refill(stream)`` when it runs dry."""
    frame_type, stream_type = _active
    return stream_type(frame_type, refill, HEADER_SPEC)


def frames_at(page, offsets) -> list:
    """The frames at these (validated) offsets of ``page``."""
    s = stream(end_of_stream)
    s.feed(page, page.mm, offsets)
    return list(s)


def frames_from_headers(page, offsets, headers) -> list:
    """Frames made from headers already decoded into kftools' header dtype (another format's pages,
    whose headers the stream cannot read in place)."""
    make = _active[0]
    cols = [headers[n].tolist() for n in HEADER_FIELDS]
    return [make(page, row) for row in zip(offsets.tolist(), *cols, strict=True)]


def end_of_stream(stream) -> bool:
    """A refill for a stream fed once: nothing more."""
    return False
