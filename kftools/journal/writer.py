"""The Python writer: append frames to an mmap'd page and publish them by storing the cursor."""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
import threading
import time

import numpy as np

from ..errors import (
    CorruptJournal,
    FrameTooLarge,
    JournalLocked,
    NotAJournal,
    OutputError,
    UnknownType,
    UnreadablePage,
    UsageError,
)
from .format import (
    ACK,
    CURSOR_OFFSET,
    DEFAULT_PAGE_SIZE,
    DEPTH,
    DEPTH_LEVELS,
    FLAGS_OFFSET,
    FRAME_HEADER,
    FRAME_HEADER_SIZE,
    MAGIC,
    MAX_PAGE_SIZE,
    MIN_PAGE_SIZE,
    ORDER,
    PAGE_HEADER,
    PAGE_HEADER_SIZE,
    PID_OFFSET,
    TICKER,
    TRADE,
    VERSION,
    MsgType,
    OrderType,
    PageFlag,
    Side,
    checksums_path,
    page_path,
    tmp_page_path,
)
from .layout import BYTE_ORDER
from .lock import try_lock
from .page import U32, NotYetWritten, cursor_publisher, open_page
from .pages import PageSet, journal_pages, stale_pages
from .pretouch import pretoucher
from .registry import DEFAULT_REGISTRY, TypeRegistry
from .summaries import drop_summaries
from .walk import Damage, Walk


def _forget_checksums(path: str) -> None:
    """Records of an earlier journal of this name (checksums, page summaries) would not match: forget them."""
    try:
        os.unlink(checksums_path(path))
    except FileNotFoundError:
        pass
    drop_summaries(path)


def _frame_struct(payload) -> struct.Struct:
    # header and payload packed in one call: derived from the two layouts
    return struct.Struct(BYTE_ORDER + FRAME_HEADER.struct.format[1:] + payload.struct.format[1:])


_TICKER_FRAME = _frame_struct(TICKER)
_ORDER_FRAME = _frame_struct(ORDER)
_TRADE_FRAME = _frame_struct(TRADE)
_ACK_FRAME = _frame_struct(ACK)
_ACK_TYPE = int(MsgType.ACK)
_HEADER = FRAME_HEADER.struct
_HDR = FRAME_HEADER_SIZE  # bytes of frame header in front of every payload


def _remove_own_next_page(path: str, index: int) -> None:
    """Delete ``<page index>.tmp`` only if it is provably a page of this journal a killed writer left.

    The caller holds the journal's lock, so no live writer of this journal is making it;
    it must be a regular file whose header is unwritten (all zero) or names this page
    index. Anything else (a note, a link, another journal's page) is left alone.
    """
    tmp = tmp_page_path(page_path(path, index))
    try:
        st = os.lstat(tmp)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        return
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        head = os.pread(fd, PAGE_HEADER_SIZE, 0)
    finally:
        os.close(fd)
    if len(head) == PAGE_HEADER_SIZE:
        h = PAGE_HEADER.unpack(head)
        ours = (h["magic"] == MAGIC and h["page_index"] == index) or not any(head)
    else:
        ours = not any(head)  # killed before the header was written
    if ours:
        os.unlink(tmp)


class Writer:
    """Append frames to a journal; a context manager.

    ``page_size`` applies to pages this writer creates (default: the last
    page's capacity when resuming, else 128 MiB). Frames are visible to readers
    as soon as a ``write_*`` call returns; ``sync()`` and ``close()`` msync
    them to disk.

    A journal that exists already is refused unless ``append=True`` (as ``kftools simulate`` refuses one
    without ``--append``): a new journal's name that happens to be taken never gets frames added silently.

    ``pretouch=True``: a native thread keeps the page faulted in from the write
    position to up to ``pretouch.AHEAD`` bytes past it, so storing a frame never
    waits for the kernel to back fresh memory (``_pretouch.c``); for writers
    that must publish on time. Without the C extensions it does nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        page_size: int | None = None,
        *,
        source: int = 0,
        dest: int = 0,
        registry: TypeRegistry | None = None,
        pretouch: bool = False,
        append: bool = False,
    ):
        self.path = os.fspath(path)
        self._append = append
        if page_size is not None and not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
            raise UsageError(f"page size {page_size} must be between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE} bytes")
        self.source = source
        self.dest = dest
        self.registry = registry or DEFAULT_REGISTRY
        self._symbols: dict[str, bytes] = {}
        self._lock_fd = -1
        self._pretouch = pretouch
        self._pretoucher = None
        self._closed = True  # until _adopt maps the first page
        self.frames_written = 0
        # summaries of the pages this writer sealed, computed in threads, appended by this writer's own calls
        self._summarizers: list[tuple[threading.Thread, list]] = []
        self._open(page_size)

    # -- opening ---------------------------------------------------------------
    def _open(self, page_size: int | None) -> None:
        created = not os.path.lexists(self.path)
        if created:
            _refuse_stale_pages(self.path)
        # O_NONBLOCK: a FIFO at the path must not block the open; it is refused below
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o644)
        except OSError as e:  # a directory, a permission
            raise OutputError(f"{self.path}: cannot open for writing: {e.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutputError(f"{self.path}: not a regular file (a FIFO, device or socket is never a journal)")
            if not _lock_with_retry(fd):
                pid = _read_pid(self.path)
                who = f"pid {pid}" if pid else "another process"
                raise JournalLocked(f"{self.path}: journal is locked by a writer ({who})")
            if os.fstat(fd).st_size == 0 or _header_unfinished(fd, self.path):
                if not created:
                    _refuse_stale_pages(self.path)
                self.page_size = page_size or DEFAULT_PAGE_SIZE
                _forget_checksums(self.path)  # records of an earlier journal of this name would not match
                try:
                    _init_page(fd, self.page_size, 0, self.path)
                except OutputError:
                    if created:
                        os.unlink(self.path)  # leave nothing behind for a journal we could not create
                    raise
            elif not self._append:
                raise OutputError(f"{self.path}: a journal exists here already; pass append=True to add frames to it")
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        try:
            index = len(journal_pages(self.path)) - 1
            _remove_own_next_page(self.path, index + 1)  # a page a killed writer was still preparing
            # never append to a journal verify does not call clean: the whole walk, not just the tail
            # (a sealed last page whose successors vanished, a gap, a foreign or damaged page)
            damage = _damage(self.path, self.registry)
            if damage is not None:
                raise CorruptJournal(f"{damage}; run `kftools recover` before writing to it")
            page = open_page(page_path(self.path, index), index, writable=True)
            self.page_size = page_size or page.capacity
            self._adopt(page)
        except BaseException:
            self._release_lock()
            raise

    def _adopt(self, page) -> None:
        self._page = page
        self._index = page.index
        self._mm = page.mm
        self._closed = False
        # The cursor is published through one handle (publish_cursor: a single 4-byte store, never
        # struct.pack_into, which zero-fills its target first: a writer killed in that instant left its
        # page's frames unreachable; then a wake when followers are parked on it).
        self._cursor = cursor_publisher(page.mm)
        self._publish = self._cursor.publish
        self._cap = page.limit()  # a truncated file holds less than its header claims
        self._pos = page.cursor
        # On ext4 the first store through the mapping that needs a new disk block
        # costs about 2 ms (later ones a few µs): pay it here, at open or rollover,
        # not in the middle of a stream of frames. The byte is rewritten unchanged,
        # past the cursor, so nothing a reader can see changes.
        block = (self._pos // 4096 + 1) * 4096
        if block < self._cap:
            self._mm[block] = self._mm[block]
        U32.pack_into(self._mm, PID_OFFSET, os.getpid() & 0xFFFFFFFF)
        flags = U32.unpack_from(self._mm, FLAGS_OFFSET)[0]
        U32.pack_into(self._mm, FLAGS_OFFSET, flags & ~int(PageFlag.CLOSED))
        if self._pretouch:
            self._pretoucher = pretoucher(self._mm, self._cap, cursor_offset=CURSOR_OFFSET)

    def _let_go_of_page(self) -> None:
        """Stop the pretoucher (it holds the mapping) and the cursor view, then close the page."""
        if self._pretoucher is not None:
            self._pretoucher.stop()
            self._pretoucher = None
        self._cursor.release()
        self._page.close()

    # -- appending -------------------------------------------------------------
    def _room(self, total: int) -> int:
        if self._pos + total > self._cap:
            self._roll(total)
        return self._pos

    def _roll(self, total: int) -> None:
        if self._closed:
            raise UsageError(f"{self.path}: write after close(): the writer is closed")
        if PAGE_HEADER_SIZE + total > self.page_size:
            raise FrameTooLarge(
                f"{self.path}: a {total}-byte frame does not fit in a {self.page_size}-byte page"
            )
        nxt = self._index + 1
        final = page_path(self.path, nxt)
        tmp = tmp_page_path(final)
        _remove_own_next_page(self.path, nxt)
        try:
            # never through a link, never over a file that is not provably ours
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise OutputError(f"{tmp}: cannot create the next page: {e.strerror}") from None
        try:
            _init_page(fd, self.page_size, nxt, final)
        except OutputError:
            os.unlink(tmp)
            raise
        finally:
            os.close(fd)
        # rename makes the new page appear whole: a follower never maps a half-made page
        os.rename(tmp, final)
        flags = U32.unpack_from(self._mm, FLAGS_OFFSET)[0]
        U32.pack_into(self._mm, FLAGS_OFFSET, flags | PageFlag.SEALED)
        self._publish(self._pos)  # the same cursor: followers parked on this page wake and roll over
        self._let_go_of_page()
        self._adopt(open_page(final, nxt, writable=True))
        self._summarize(self._index - 1)

    def _summarize(self, index: int) -> None:
        """Summarise the page just sealed off the writer's path: a thread fsyncs and walks it (the scan runs
        without the GIL); its record is appended to ``<journal>.summaries`` by this writer's next rollover or
        close(), so nothing beside the journal changes between the writer's calls. A writer killed first
        leaves no record: readers recompute it, monitor or the next writer records it."""
        from .summaries import summarize_sealed

        self._append_summaries(wait=False)
        out: list = []
        args = (page_path(self.path, index), index, self.registry)
        t = threading.Thread(target=lambda: out.append(summarize_sealed(*args)), name=f"kftools-summary-{index}",
                             daemon=True)
        t.start()
        self._summarizers.append((t, out))

    def _append_summaries(self, wait: bool) -> None:
        """Append the records of the summaries computed so far (all of them, waiting, with ``wait``)."""
        from .summaries import append_summaries

        done: list[tuple[threading.Thread, list]] = []
        pending: list[tuple[threading.Thread, list]] = []
        for t, out in self._summarizers:
            if wait:
                t.join()
            (pending if t.is_alive() else done).append((t, out))
        self._summarizers = pending
        found = [s for _t, out in done for s in out if s is not None]
        if found and _room_beside(self.path, self._cap - self._pos):
            try:
                append_summaries(self.path, found)
            except (OSError, UnreadablePage):
                pass  # an unwritable folder: readers recompute them

    def write(
        self,
        msg_type: int | str,
        payload: bytes | bytearray | memoryview | np.void | None = None,
        *,
        gen_time: int | None = None,
        trigger_time: int = 0,
        source: int | None = None,
        dest: int | None = None,
        padding: int = 0,
        **fields,
    ) -> int:
        """Append one frame of any type; returns its ``gen_time``.

        ``payload`` is the raw bytes, a numpy record of the type's dtype, or
        omitted with the type's fields given as keyword arguments.
        """
        if self._closed:
            raise self._bad_call("write", None)
        if isinstance(msg_type, str):
            msg_type = self.registry.resolve(msg_type)
        if not isinstance(msg_type, int) or isinstance(msg_type, bool) or not 0 < msg_type <= 0xFFFFFFFF:
            raise UsageError(f"msg_type {msg_type} must be in 1..4294967295 (0 marks damage)")
        if payload is None:
            mt = self.registry.get(msg_type)
            if mt is None:
                raise UnknownType(f"unknown message type {msg_type}: pass payload bytes or register the type")
            values = []
            for f in mt.layout.fields:
                v = fields.pop(f.name, b"" if f.is_text else 0)
                values.append(v.encode() if isinstance(v, str) else v)
            if fields:
                raise UsageError(f"{mt.name} has no field(s) {', '.join(sorted(fields))}")
            try:
                payload = mt.layout.struct.pack(*values)
            except struct.error as e:
                raise UsageError(f"{mt.name}: bad field value: {e}") from None
        elif fields:
            raise UsageError("give either payload bytes or fields, not both")
        data = payload.tobytes() if isinstance(payload, np.void) else bytes(payload)
        if padding < 0:
            raise UsageError(f"padding {padding} must be >= 0")
        mt = self.registry.get(msg_type)
        if mt is not None and len(data) + padding < mt.layout.size:
            # readers would call such a frame damage: never write one
            raise UsageError(f"a {len(data) + padding}-byte {mt.name} payload is shorter than its layout ({mt.layout.size} bytes)")
        n = len(data) + padding
        pos = self._room(FRAME_HEADER_SIZE + n)
        mm = self._mm
        if gen_time is None:
            gen_time = time.time_ns()
        try:
            _HEADER.pack_into(
                mm, pos, n, msg_type, gen_time, trigger_time,
                self.source if source is None else source, self.dest if dest is None else dest,
            )
        except (struct.error, TypeError) as e:
            raise self._bad_call("write", e) from None
        end = pos + FRAME_HEADER_SIZE + len(data)
        mm[pos + FRAME_HEADER_SIZE : end] = data
        if padding:
            mm[end : end + padding] = bytes(padding)
        self._commit(pos + FRAME_HEADER_SIZE + n)
        return gen_time

    def write_raw_frames(self, data, starts, first: int = 0, last: int | None = None) -> int:
        """Append whole frames ``first..last-1`` of ``data`` in bulk; returns how many.

        ``data`` holds frames (header and payload) back to back and ``starts``
        their start offsets plus the end (as ``FrameBatch.raw_frames()`` returns).
        The bytes are copied as given. The cursor is published once per page,
        after the bytes: a follower sees all of the frames on a page or none.
        """
        if last is None:
            last = len(starts) - 1
        if last <= first:
            return 0
        if self._closed:
            raise self._bad_call("write_raw_frames", None)
        src = data if isinstance(data, memoryview) and data.format == "B" else memoryview(data).cast("B")
        done = first
        while done < last:
            a = int(starts[done])
            room = self._cap - self._pos
            if int(starts[last]) - a <= room:
                k = last
            else:
                # the longest run of whole frames that fits; the rest goes to the next page
                k = done + int(np.searchsorted(np.asarray(starts[done + 1 : last + 1]), a + room, "right"))
                if k == done:
                    self._roll(int(starts[done + 1]) - a)
                    continue
            b = int(starts[k])
            pos = self._pos
            self._mm[pos : pos + b - a] = src[a:b]
            self._pos = pos = pos + b - a
            self._publish(pos)  # commit: see _commit
            self.frames_written += k - done
            done = k
        return last - first

    def append_area(self, need: int = 0) -> tuple[mmap.mmap, int, int]:
        """``(page mapping, write position, capacity)`` for code that appends frames itself (replay's C pacer).

        With ``need``, first rolls to a new page unless that many bytes fit. The
        caller copies whole frames from the position on, publishes the cursor
        (``cursor.h``'s kf_publish_cursor: one store after the bytes, a wake when followers are parked) and then calls
        :meth:`appended`.
        """
        if self._closed:
            raise self._bad_call("append_area", None)
        if need:
            self._room(need)
        return self._mm, self._pos, self._cap

    def appended(self, pos: int, frames: int) -> None:
        """Take note of ``frames`` frames appended through :meth:`append_area`, now ending at ``pos``."""
        self._pos = pos
        self.frames_written += frames

    def _commit(self, pos: int) -> None:
        # The cursor store comes after the frame's stores. x86-64 keeps stores in
        # program order (TSO), so a reader that sees the cursor sees the frame.
        self._pos = pos
        self._publish(pos)
        self.frames_written += 1

    def _bad_call(self, method: str, error: Exception | None) -> UsageError:
        """The error for a write_* call that could not pack its frame: closed writer or a bad argument."""
        if self._closed:
            return UsageError(f"{self.path}: {method} after close(): the writer is closed")
        return UsageError(f"{method}: bad argument: {error}")

    def _sym(self, symbol: str | bytes) -> bytes:
        b = self._symbols.get(symbol)  # type: ignore[arg-type]
        if b is None:
            b = _text("symbol", symbol, 16)
            if len(self._symbols) < 100_000:
                self._symbols[symbol] = b  # type: ignore[index]
        return b

    def write_ticker(
        self, symbol: str, last_price: float, bid_price: float = 0.0, ask_price: float = 0.0, volume: float = 0.0,
        *, gen_time: int | None = None, trigger_time: int = 0, source: int | None = None, dest: int | None = None,
        padding: int = 0,
    ) -> int:
        """Append a Ticker (msg_type 1); returns its ``gen_time``."""
        n = TICKER.size + padding
        pos = self._pos
        if pos + _HDR + n > self._cap:
            pos = self._room(_HDR + n)
        if gen_time is None:
            gen_time = time.time_ns()
        try:
            _TICKER_FRAME.pack_into(
                self._mm, pos, n, 1, gen_time, trigger_time,
                self.source if source is None else source, self.dest if dest is None else dest,
                self._sym(symbol), last_price, bid_price, ask_price, volume,
            )
        except (struct.error, TypeError, ValueError) as e:
            raise self._bad_call("write_ticker", e) from None
        if padding:
            self._mm[pos + _HDR + TICKER.size : pos + _HDR + n] = bytes(padding)
        self._pos = pos = pos + _HDR + n
        self._publish(pos)  # commit: see _commit
        self.frames_written += 1
        return gen_time

    def write_ack(self, frames: int, *, gen_time: int | None = None, trigger_time: int = 0, source: int | None = None,
                  dest: int | None = None) -> int:
        """Append an Ack (msg_type 7: a strategy has handled ``frames`` of a replay's output); returns its
        ``gen_time``. A lockstep strategy writes one per frame it handles: this is the short path."""
        pos = self._pos
        if pos + _ACK_FRAME.size > self._cap:
            pos = self._room(_ACK_FRAME.size)
        if gen_time is None:
            gen_time = time.time_ns()
        try:
            _ACK_FRAME.pack_into(self._mm, pos, ACK.size, _ACK_TYPE, gen_time, trigger_time,
                                 self.source if source is None else source, self.dest if dest is None else dest, frames)
        except (struct.error, TypeError, ValueError) as e:
            raise self._bad_call("write_ack", e) from None
        self._pos = pos = pos + _ACK_FRAME.size
        self._publish(pos)  # commit: see _commit
        self.frames_written += 1
        return gen_time

    def write_order(
        self, symbol: str, order_id: int, side: int, order_type: int = 0, price: float = 0.0,
        quantity: float = 0.0, filled_quantity: float = 0.0, client_order_id: str | bytes = b"",
        *, gen_time: int | None = None, trigger_time: int = 0, source: int | None = None, dest: int | None = None,
        padding: int = 0,
    ) -> int:
        """Append an Order (msg_type 2); returns its ``gen_time``."""
        coid = _text("client_order_id", client_order_id, 32)
        if side not in _SIDES:
            raise UsageError(f"write_order: side {side!r} must be Side.BUY (0) or Side.SELL (1)")
        if order_type not in _ORDER_TYPES:
            raise UsageError(f"write_order: order_type {order_type!r} must be an OrderType (0 limit, 1 market, 2 limit IOC, 3 limit FOK, 4 post-only)")
        n = ORDER.size + padding
        if self._closed:
            raise self._bad_call("write_order", None)
        pos = self._room(_HDR + n)
        if gen_time is None:
            gen_time = time.time_ns()
        try:
            _ORDER_FRAME.pack_into(
                self._mm, pos, n, int(MsgType.ORDER), gen_time, trigger_time,
                self.source if source is None else source, self.dest if dest is None else dest,
                self._sym(symbol), order_id, int(side), int(order_type), price, quantity, filled_quantity, coid,
            )
        except (struct.error, TypeError, ValueError) as e:
            raise self._bad_call("write_order", e) from None
        if padding:
            self._mm[pos + _HDR + ORDER.size : pos + _HDR + n] = bytes(padding)
        self._commit(pos + _HDR + n)
        return gen_time

    def write_trade(
        self, symbol: str, trade_id: int, price: float, volume: float, side: int = 0, order_id: int = 0,
        *, gen_time: int | None = None, trigger_time: int = 0, source: int | None = None, dest: int | None = None,
        padding: int = 0,
    ) -> int:
        """Append a Trade (msg_type 3); returns its ``gen_time``."""
        if side not in _SIDES:
            raise UsageError(f"write_trade: side {side!r} must be Side.BUY (0) or Side.SELL (1)")
        n = TRADE.size + padding
        if self._closed:
            raise self._bad_call("write_trade", None)
        pos = self._room(_HDR + n)
        if gen_time is None:
            gen_time = time.time_ns()
        try:
            _TRADE_FRAME.pack_into(
                self._mm, pos, n, int(MsgType.TRADE), gen_time, trigger_time,
                self.source if source is None else source, self.dest if dest is None else dest,
                self._sym(symbol), trade_id, order_id, int(side), 0, price, volume,
            )
        except (struct.error, TypeError, ValueError) as e:
            raise self._bad_call("write_trade", e) from None
        if padding:
            self._mm[pos + _HDR + TRADE.size : pos + _HDR + n] = bytes(padding)
        self._commit(pos + _HDR + n)
        return gen_time

    def write_depth(
        self, symbol: str, bids, asks, *, gen_time: int | None = None, trigger_time: int = 0,
        source: int | None = None, dest: int | None = None,
    ) -> int:
        """Append a Depth snapshot (msg_type 9): ``bids`` and ``asks`` are (price, volume) pairs, best first,
        at most ``DEPTH_LEVELS`` each; returns its ``gen_time``."""
        rec = np.zeros((), DEPTH.dtype)
        try:
            rec["symbol"] = self._sym(symbol)
            for side, levels in (("bid", bids), ("ask", asks)):
                levels = list(levels)
                if len(levels) > DEPTH_LEVELS:
                    raise UsageError(f"write_depth: {len(levels)} {side} levels, a Depth frame holds {DEPTH_LEVELS}")
                for i, (px, vol) in enumerate(levels):
                    rec[side + "_price"][i] = px
                    rec[side + "_volume"][i] = vol
        except (TypeError, ValueError) as e:
            raise self._bad_call("write_depth", e) from None
        return self.write(int(MsgType.DEPTH), rec.tobytes(), gen_time=gen_time, trigger_time=trigger_time,
                          source=source, dest=dest)

    # -- lifecycle -------------------------------------------------------------
    @property
    def page_index(self) -> int:
        return self._index

    @property
    def position(self) -> tuple[int, int]:
        """(page index, write cursor) of the next frame."""
        return self._index, self._pos

    def sync(self) -> None:
        """msync the current page: committed frames survive a power loss."""
        if not self._closed:
            self._mm.flush()

    def close(self) -> None:
        """Mark the journal closed cleanly, msync, and release the writer lock."""
        if self._closed:
            return
        flags = U32.unpack_from(self._mm, FLAGS_OFFSET)[0]
        U32.pack_into(self._mm, FLAGS_OFFSET, flags | PageFlag.CLOSED)
        self._publish(self._pos)  # the same cursor: parked followers wake and see the journal closed
        self._mm.flush()
        self._let_go_of_page()
        self._closed = True
        self._append_summaries(wait=True)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the open file releases the OFD lock
            self._lock_fd = -1

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter teardown
            pass


_SIDES = frozenset(int(s) for s in Side)
_ORDER_TYPES = frozenset(int(t) for t in OrderType)


def _text(name: str, value, limit: int) -> bytes:
    """A text field as bytes (str is UTF-8 encoded), at most ``limit`` bytes."""
    if isinstance(value, str):
        b = value.encode()
    elif isinstance(value, bytes | bytearray):
        b = bytes(value)
    else:
        raise UsageError(f"{name} must be str or bytes, not {type(value).__name__} ({value!r})")
    if len(b) > limit:
        raise UsageError(f"{name} {value!r} is longer than {limit} bytes")
    return b


def _lock_with_retry(fd: int) -> bool:
    # a reader probing writer state holds nothing, but be tolerant of a racing
    # writer that is just closing
    for _ in range(5):
        if try_lock(fd):
            return True
        time.sleep(0.01)
    return False


def _refuse_stale_pages(path: str) -> None:
    """A new journal never inherits pages it did not write (left from an earlier run or another journal)."""
    stale = stale_pages(path)
    if stale:
        raise OutputError(
            f"{path}: {stale[0]} is there, a page of another journal (left from an earlier run?); a new journal"
            " never adopts pages it did not write: remove it or choose another name"
        )


def _room_beside(path: str, reserved: int) -> bool:
    """Whether a record beside the journal leaves the ``reserved`` bytes the writer's sparse page still needs:
    a summary must never take the block a frame store then faults on (SIGBUS on a full disk)."""
    try:
        vfs = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return vfs.f_bavail * vfs.f_frsize >= reserved + (1 << 20)


def _damage(path: str, registry: TypeRegistry) -> Damage | None:
    """Where the journal at ``path`` stops being valid (the one walk, as verify reads it), or None.

    Sealed pages whose summary still holds are not walked again (they were walked clean when sealed, and
    their file has not changed since); the others are, and the summaries missing are recorded (we hold the
    lock: no other writer is sealing pages)."""
    from .summaries import Summaries

    pages = PageSet(path, registry=registry)
    try:
        walk = Walk(pages)
        last = pages.path_of(pages.indices()[-1])
        sums = Summaries(pages, record=_room_beside(path, os.path.getsize(last) if os.path.exists(last) else 0))
        for batch in walk.snapshot(batch_size=1 << 16, skip=sums.skipper()):
            PageSet.release(batch.page, 0, int(batch.offsets[-1]))
        sums.save()
        return walk.damage
    finally:
        pages.close()


def _header_unfinished(fd: int, path: str) -> bool:
    """True if the first page's header was never finished (a writer died creating it): safe to rewrite.

    Raises CorruptJournal when such a header sits in front of frames or later pages (bytes lost
    to a power loss): rewriting it would hide them.
    """
    head = os.pread(fd, PAGE_HEADER_SIZE + FRAME_HEADER_SIZE, 0)
    if len(head) < PAGE_HEADER_SIZE:
        raise NotAJournal(f"{path}: {len(head)} bytes, too small for a {PAGE_HEADER_SIZE}-byte page header")
    if head[:PAGE_HEADER_SIZE] != bytes(PAGE_HEADER_SIZE) and PAGE_HEADER.unpack(head)["version"] != 0:
        return False
    if head[PAGE_HEADER_SIZE:].strip(b"\0") or os.path.exists(page_path(path, 1)):
        raise CorruptJournal(f"{path}: page header is missing but frames or pages follow it; not overwriting them")
    return True


def _init_page(fd: int, capacity: int, index: int, path: str) -> None:
    try:
        # A full disk must fail here, cleanly, not as SIGBUS on a store into the mapped page.
        # Check the free space and keep the page sparse: posix_fallocate would reserve the
        # blocks but makes every page's full size real at once, and the kill -9 run saw more
        # zeroed cursors with it (RELIABILITY.md). Space others take meanwhile is not covered.
        vfs = os.fstatvfs(fd)
        if vfs.f_bavail * vfs.f_frsize < capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.ftruncate(fd, capacity)
    except OSError as e:
        raise OutputError(f"{path}: cannot create a {capacity:,}-byte page: {e.strerror}") from None
    header = PAGE_HEADER.struct.pack(PAGE_HEADER_SIZE, 0, capacity, 0, MAGIC, index, os.getpid() & 0xFFFFFFFF, 0, 0, b"")
    os.pwrite(fd, header, 0)
    # version last: a reader treats a header without it as not yet written
    os.pwrite(fd, U32.pack(VERSION), PAGE_HEADER.offset("version"))


def _read_pid(path: str) -> int:
    try:
        with open(journal_pages(path)[-1], "rb") as fh:
            return PAGE_HEADER.unpack(fh.read(PAGE_HEADER_SIZE))["writer_pid"]
    except (OSError, IndexError, struct.error):
        return 0


__all__ = ["Writer", "NotYetWritten"]
