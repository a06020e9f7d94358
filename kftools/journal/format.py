"""The journal format, declared once. FORMAT.md's tables are generated from here.

Run ``python -m kftools.journal.format`` to print the tables FORMAT.md carries.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from .layout import Field, Labelled, Layout

VERSION = 1
#: "KFJ1" little-endian. Zero is allowed: engines that know only the four
#: standard header fields leave the reserved bytes zero.
MAGIC = 0x314A464B
DEFAULT_PAGE_SIZE = 128 * 1024 * 1024
MIN_PAGE_SIZE = 4096
MAX_PAGE_SIZE = 0xFFFF_FFFF


class PageFlag(enum.IntFlag):
    """Bits of the page header's ``flags`` field."""

    SEALED = 1  # the writer continued in the next page; no frame will be added here
    CLOSED = 2  # the writer closed the journal cleanly with this page as its last


class WriterState(enum.StrEnum):
    """What became of a journal's writer, as ``writer_state()`` tells it from the lock and the last page.

    A ``StrEnum``: the value is what every output shows (info, the tail, JSON, the monitor's ``state`` label),
    and a member equals its value (``WriterState.CRASHED == "crashed"``)."""

    ALIVE = "alive"  # a process holds the writer's lock
    EXITED = "exited"  # the last page is CLOSED: the writer closed the journal cleanly
    CRASHED = "crashed"  # the last page names a writer (magic and pid) that is gone without closing
    UNKNOWN = "unknown"  # no trace to tell by: an engine that writes no magic or pid, or a journal unreadable now
    MISSING = "missing"  # no journal yet (a gateway's order journal before the strategy creates it)


PAGE_HEADER = Layout(
    "PageHeader",
    [
        Field("write_cursor", "u32", "offset in the page of the end of the last committed frame (64 when empty)"),
        Field("read_cursor", "u32", "reserved by engines; kftools writes 0 and never reads it"),
        Field("capacity", "u32", "size of the page in bytes"),
        Field("version", "u32", "format version, 1"),
        Field("magic", "u32", "`0x314A464B` (\"KFJ1\") when written by kftools or its C++ header, else 0"),
        Field("page_index", "u32", "0 for the first page, n for `<path>.<n>`; 0 when magic is 0"),
        Field("writer_pid", "u32", "pid of the last writer that opened the page; 0 if unknown"),
        Field("flags", "u32", "bit 0 SEALED (continued in the next page), bit 1 CLOSED (writer exited cleanly)"),
        Field("waiters", "u32", "followers parked on `write_cursor` (a futex wait): a writer that publishes the "
              "cursor wakes them when this is not 0; 0 when no follower parks"),
        Field("reserved", "char[28]", "zero"),
    ],
    "64-byte header at offset 0 of every page file.",
)
PAGE_HEADER_SIZE = PAGE_HEADER.size
assert PAGE_HEADER_SIZE == 64

FRAME_HEADER = Layout(
    "FrameHeader",
    [
        Field("length", "u32", "bytes of payload after this header"),
        Field("msg_type", "u32", "message type id (0 is never valid)"),
        Field("gen_time", "i64", "wall-clock ns since the Unix epoch when the frame was written (`gen_time_ns`)"),
        Field("trigger_time", "i64", "ns; the time of the event that caused this frame (replay: the original gen_time); "
              "0 when unset", zero_is_unset=True),
        Field("source", "u32", "id of the producer"),
        Field("dest", "u32", "id of the intended consumer, 0 for everyone"),
    ],
    "32-byte packed header in front of every payload.",
)
FRAME_HEADER_SIZE = FRAME_HEADER.size
assert FRAME_HEADER_SIZE == 32
CURSOR_OFFSET = PAGE_HEADER.offset("write_cursor")
FLAGS_OFFSET = PAGE_HEADER.offset("flags")
PID_OFFSET = PAGE_HEADER.offset("writer_pid")
WAITERS_OFFSET = PAGE_HEADER.offset("waiters")


class MsgType(enum.IntEnum):
    """Built-in message types. Users register more (ids >= 100 recommended)."""

    TICKER = 1
    ORDER = 2
    TRADE = 3
    CANCEL_REQUEST = 4
    ORDER_UPDATE = 5
    FILL = 6
    ACK = 7
    MODIFY_REQUEST = 8
    DEPTH = 9
    TIMER = 10


class Side(Labelled):
    BUY = 0
    SELL = 1


class OrderType(Labelled):
    """An order's type and time in force, one number (the Order layout has one field for both)."""

    LIMIT = 0  # good till canceled: fills what it can on arrival, rests the rest
    MARKET = 1  # takes what the book offers on arrival; what finds no liquidity expires
    LIMIT_IOC = 2  # immediate or cancel: fills what it can on arrival at its limit or better, the rest expires
    LIMIT_FOK = 3  # fill or kill: fills entirely on arrival at its limit or better, or expires unfilled
    POST_ONLY = 4  # rests at its limit; rejected (POST_ONLY_WOULD_TAKE) if it would take on arrival


class OrderStatus(Labelled):
    """``status`` of an OrderUpdate."""

    ACCEPTED = 0  # arrived at the exchange and working (resting, or about to fill)
    PARTIALLY_FILLED = 1
    FILLED = 2
    CANCELED = 3
    REJECTED = 4  # see ``reject_reason``
    CANCEL_REJECTED = 5  # a cancel failed (``reject_reason`` says why); the order itself is unchanged
    EXPIRED = 6  # an IOC, FOK or market order's unfilled rest, canceled by the exchange on arrival
    MODIFIED = 7  # a modify took effect (price or quantity); a new price or a larger quantity lost the queue
    MODIFY_REJECTED = 8  # a modify failed (``reject_reason`` says why); the order itself is unchanged


class RejectReason(Labelled):
    """``reject_reason`` of an OrderUpdate (0 unless the status is REJECTED or CANCEL_REJECTED)."""

    NONE = 0
    BAD_QUANTITY = 1  # not a positive finite number
    BAD_PRICE = 2  # a limit price that is not a positive finite number
    UNKNOWN_SYMBOL = 3  # the recording has no market data for it
    UNKNOWN_ORDER = 4  # a cancel for an order id never sent
    TOO_LATE = 5  # a cancel that arrived after the order was filled or canceled
    NO_MARKET = 6  # a market order with no price to fill at yet
    DUPLICATE_ID = 7  # an order id already used
    POST_ONLY_WOULD_TAKE = 8  # a post-only order that would have crossed the spread on arrival
    NOT_FINITE = 9  # the order's notional (price x quantity) is not a finite number


class Liquidity(Labelled):
    """``liquidity`` of a Fill: who the order was in the trade."""

    MAKER = 0  # a resting limit order that the market came to
    TAKER = 1  # an order that crossed the spread when it arrived


class FillFlag(enum.IntFlag):
    """``flags`` of a Fill."""

    NO_QUOTE = 1  # the recording had no bid/ask for the symbol: filled at the last trade price


TICKER = Layout(
    "Ticker",
    [
        Field("symbol", "char[16]", "NUL-padded"),
        Field("last_price", "f64"),
        Field("bid_price", "f64"),
        Field("ask_price", "f64"),
        Field("volume", "f64"),
    ],
    "msg_type 1.",
)
ORDER = Layout(
    "Order",
    [
        Field("symbol", "char[16]", "NUL-padded"),
        Field("order_id", "u64"),
        Field("side", "u32", "0 buy, 1 sell", Side),
        Field("order_type", "u32", "0 limit, 1 market, 2 limit IOC, 3 limit FOK, 4 post-only", OrderType),
        Field("price", "f64"),
        Field("quantity", "f64"),
        Field("filled_quantity", "f64"),
        Field("client_order_id", "char[32]", "NUL-padded"),
    ],
    "msg_type 2.",
)
TRADE = Layout(
    "Trade",
    [
        Field("symbol", "char[16]", "NUL-padded"),
        Field("trade_id", "u64"),
        Field("order_id", "u64", "the order this fill belongs to, 0 for a market trade print"),
        Field("side", "u32", "0 buy, 1 sell (aggressor side)", Side),
        Field("reserved", "u32", "zero"),
        Field("price", "f64"),
        Field("volume", "f64"),
    ],
    "msg_type 3.",
)
CANCEL_REQUEST = Layout(
    "CancelRequest",
    [
        Field("symbol", "char[16]", "NUL-padded"),
        Field("order_id", "u64", "the order to cancel"),
    ],
    "msg_type 4: a strategy asks the exchange to cancel one of its orders.",
)
ORDER_UPDATE = Layout(
    "OrderUpdate",
    [
        Field("symbol", "char[16]", "NUL-padded"),
        Field("order_id", "u64"),
        Field("status", "u32", "0 accepted, 1 partially filled, 2 filled, 3 canceled, 4 rejected, "
              "5 cancel rejected (the order is unchanged), 6 expired (IOC/FOK/market rest), 7 modified, "
              "8 modify rejected (the order is unchanged)", OrderStatus),
        Field("reject_reason", "u32", "0 none, 1 bad quantity, 2 bad price, 3 unknown symbol, 4 unknown order, "
              "5 too late, 6 no market, 7 duplicate order id, 8 post-only would take, 9 notional not finite",
              RejectReason),
        Field("side", "u32", "0 buy, 1 sell", Side),
        Field("order_type", "u32", "0 limit, 1 market, 2 limit IOC, 3 limit FOK, 4 post-only", OrderType),
        Field("price", "f64", "the limit price (0 for market orders)"),
        Field("quantity", "f64", "the order's quantity"),
        Field("filled_quantity", "f64", "filled so far"),
        Field("remaining_quantity", "f64", "still working (0 once filled, canceled or rejected)"),
        Field("avg_price", "f64", "average fill price so far (0 before the first fill)"),
    ],
    "msg_type 5: the exchange's answer to an order or cancel; `trigger_time` is the simulated exchange time.",
)
FILL = Layout(
    "Fill",
    [
        Field("symbol", "char[16]", "NUL-padded"),
        Field("fill_id", "u64", "1, 2, ... per backtest"),
        Field("order_id", "u64"),
        Field("side", "u32", "0 buy, 1 sell", Side),
        Field("liquidity", "u32", "0 maker (rested, the market came to it), 1 taker (crossed on arrival)", Liquidity),
        Field("price", "f64"),
        Field("quantity", "f64"),
        Field("fee", "f64", "in cash units, positive is paid"),
        Field("flags", "u32", "bit 0 NO_QUOTE: no bid/ask in the recording, priced at the last trade"),
        Field("reserved", "u32", "zero"),
    ],
    "msg_type 6: one execution of an order; `trigger_time` is the simulated fill time.",
)
ACK = Layout(
    "Ack",
    [
        Field("frames", "u64", "frames of the replay's output the strategy has handled, counted from its first"),
    ],
    "msg_type 7: a strategy process says, in its order journal, how far it has read the replay's output "
    "(a lockstep backtest waits for it).",
)
MODIFY_REQUEST = Layout(
    "ModifyRequest",
    [
        Field("symbol", "char[16]", "NUL-padded"),
        Field("order_id", "u64", "the order to change"),
        Field("price", "f64", "the new limit price"),
        Field("quantity", "f64", "the new total quantity (filled part included)"),
    ],
    "msg_type 8: a strategy asks the exchange to change one of its resting orders (a new price or a larger "
    "quantity loses its place in the queue).",
)
#: price levels per side in a Depth frame
DEPTH_LEVELS = 10
DEPTH = Layout(
    "Depth",
    [
        Field("symbol", "char[16]", "NUL-padded"),
        Field("bid_price", f"f64[{DEPTH_LEVELS}]", "best first; 0 where the level is absent"),
        Field("bid_volume", f"f64[{DEPTH_LEVELS}]", "displayed size at each bid price"),
        Field("ask_price", f"f64[{DEPTH_LEVELS}]", "best first; 0 where the level is absent"),
        Field("ask_volume", f"f64[{DEPTH_LEVELS}]", "displayed size at each ask price"),
    ],
    "msg_type 9: a market-by-price snapshot of one symbol's book, the best 10 levels of each side.",
)
TIMER = Layout(
    "Timer",
    [
        Field("timer_id", "u64", "chosen by the strategy"),
        Field("at", "i64", "recording time, ns, when the timer fires"),
    ],
    "msg_type 10: in a strategy's order journal, a timer it sets; in the replay's output, the timer firing "
    "(`trigger_time` = `at`, `dest` = the strategy's `source`).",
)
BUILTIN_LAYOUTS = {
    MsgType.TICKER: TICKER, MsgType.ORDER: ORDER, MsgType.TRADE: TRADE,
    MsgType.CANCEL_REQUEST: CANCEL_REQUEST, MsgType.ORDER_UPDATE: ORDER_UPDATE, MsgType.FILL: FILL,
    MsgType.ACK: ACK, MsgType.MODIFY_REQUEST: MODIFY_REQUEST, MsgType.DEPTH: DEPTH, MsgType.TIMER: TIMER,
}

# -- files beside a journal (never read by engines) ---------------------------------
#: "KFR1": the reader-positions file ``<journal>.readers``
READERS_MAGIC = 0x3152464B
READERS_HEADER = Layout(
    "ReadersHeader",
    [
        Field("magic", "u32", "`0x3152464B` (\"KFR1\")"),
        Field("version", "u32", "1"),
        Field("slot_count", "u32", "number of reader slots after this header"),
        Field("slot_size", "u32", "bytes per slot, 64"),
        Field("reserved", "char[48]", "zero"),
    ],
    "64-byte header of `<journal>.readers`.",
)
READER_SLOT = Layout(
    "ReaderSlot",
    [
        Field("position", "u64", "`(page << 32) + offset` of the last frame the reader consumed; 0 before the first"),
        Field("pid", "u32", "pid of the process that claimed the name"),
        Field("state", "u32", "0 free, 1 claimed (alive unless the process is gone), 2 released cleanly"),
        Field("start_ticks", "u64", "the process's start time (/proc/PID/stat field 22): a reused pid is not alive"),
        Field("claimed_time", "i64", "ns since the epoch when the name was claimed"),
        Field("name", "char[32]", "NUL-padded UTF-8"),
    ],
    "One named reader; `position` is the only field its reader stores while reading (one aligned 8-byte store).",
)
#: "KFC1": a record of ``<journal>.checksums``
CHECKSUM_RECORD = Layout(
    "ChecksumRecord",
    [
        Field("magic", "u32", "`0x3143464B` (\"KFC1\"): a sealed page; `0x3150464B` (\"KFP1\"): the frames so far "
                              "of a journal's last page, which a writer may resume"),
        Field("page_index", "u32", "the page"),
        Field("write_cursor", "u32", "its write cursor when the checksum was taken"),
        Field("crc32", "u32", "CRC-32 (zlib) of the page's bytes [0, write_cursor) (KFC1), or of its frames "
                              "[64, write_cursor) (KFP1: the header changes when a writer resumes, those frames never)"),
        Field("file_size", "u64", "the page file's size"),
        Field("recorded_time", "i64", "ns since the epoch"),
    ],
    "32-byte record appended to `<journal>.checksums` for each sealed page, and for the last page once no writer "
    "holds it; the last record of a page counts.",
)
CHECKSUM_MAGIC = 0x3143464B
CHECKSUM_PREFIX_MAGIC = 0x3150464B
def pack_position(page: int, offset: int) -> int:
    """A frame's position as one u64 (READER_SLOT's ``position``): ``page << 32 | offset``
    (``cursor.h``'s ``kf_pack_position`` is the C twin)."""
    return page << 32 | offset


def unpack_position(value: int) -> tuple[int, int] | None:
    """(page, offset of the last consumed frame), or None before the first frame."""
    return None if value == 0 else (value >> 32, value & 0xFFFF_FFFF)


#: "KFS1": a record of ``<journal>.summaries``, followed by ``type_count`` :data:`SUMMARY_TYPE` entries
SUMMARY_MAGIC = 0x3153464B
PAGE_SUMMARY = Layout(
    "PageSummary",
    [
        Field("magic", "u32", "`0x3153464B` (\"KFS1\")"),
        Field("page_index", "u32", "the page"),
        Field("write_cursor", "u32", "its write cursor: the frames summarised end here"),
        Field("type_count", "u32", "number of SummaryType entries after this record"),
        Field("frames", "u64", "frames in the page"),
        Field("min_gen_time", "i64", "smallest gen_time of its frames (0 when it has none)"),
        Field("max_gen_time", "i64", "largest gen_time"),
        Field("last_gen_time", "i64", "gen_time of its last frame"),
        Field("last_frame", "u32", "offset of its last frame (64 when it has none)"),
        Field("reserved", "u32", "zero"),
        Field("inode", "u64", "the page file's inode when summarised"),
        Field("ctime_ns", "i64", "the page file's status-change time (ns) when summarised: any later write "
                                 "changes it, and the summary is stale"),
        Field("recorded_time", "i64", "ns since the epoch"),
    ],
    "80-byte record appended to `<journal>.summaries` for each sealed page whose frames were all walked and found "
    "valid, followed by one SummaryType per message type in the page; the last record of a page counts.",
)
SUMMARY_TYPE = Layout(
    "SummaryType",
    [
        Field("msg_type", "u32", "a message type present in the page"),
        Field("min_length", "u32", "the shortest payload of that type (a reader whose layout is longer rescans)"),
        Field("frames", "u64", "frames of that type"),
    ],
    "16 bytes per message type, after its PageSummary, in increasing msg_type.",
)
#: ``<journal>.summaries``
SUMMARIES_SUFFIX = ".summaries"


#: "KFZ1": the kftools header of an archived page ``<page>.zst``
ARCHIVE_MAGIC = 0x315A464B
ARCHIVE_HEADER = Layout(
    "ArchiveHeader",
    [
        Field("magic", "u32", "`0x315A464B` (\"KFZ1\")"),
        Field("version", "u32", "1"),
        Field("page_index", "u32", "which page of the journal"),
        Field("chunk_size", "u32", "bytes of the page per zstd frame (the last may be shorter)"),
        Field("file_size", "u64", "size of the original page file (the bytes after `data_size` are zero)"),
        Field("data_size", "u64", "bytes of the page stored, from offset 0"),
        Field("crc32", "u32", "CRC-32 (zlib) of the original bytes [0, data_size)"),
        Field("write_cursor", "u32", "the page's write cursor"),
        Field("reserved", "char[24]", "zero"),
    ],
    "64 bytes, the content of the skippable zstd frame that opens an archived page.",
)
#: zstd frame magics (RFC 8878) and the seekable format's seek table (zstd contrib/seekable_format)
ZSTD_SKIPPABLE_MAGIC = 0x184D2A50  # our header; any of 0x184D2A50..5F is skipped by every zstd decoder
ZSTD_SEEKTABLE_MAGIC = 0x184D2A5E
ZSTD_SEEKABLE_FOOTER_MAGIC = 0x8F92EAB1
SKIPPABLE_HEADER = Layout("SkippableHeader", [Field("magic", "u32"), Field("size", "u32", "bytes after this header")])
SEEK_ENTRY = Layout("SeekEntry", [Field("compressed_size", "u32"), Field("decompressed_size", "u32")])
SEEK_FOOTER = Layout(
    "SeekFooter",
    [Field("frames", "u32"), Field("descriptor", "u8", "0: entries carry no checksum"), Field("magic", "u32")],
)


# -- file names ---------------------------------------------------------------------------------------------
# Every rule naming the files of a journal lives here: Python uses these, and the C++ header's constants
# (cpp/include/kftools/journal.hpp, "file names") are checked against FILE_NAMES by tests/test_structure.py.

#: ``<journal>.types``: which message types a kftools journal holds when they are not kftools' own, as JSON
#: ``{"types": "<Kungfu generation>"}`` (a Kungfu journal replayed into a kftools one carries Kungfu's types;
#: readers take them from here instead of needing ``--schema kungfu``)
TYPES_SUFFIX = ".types"
#: ``<page>.tmp``: a page a writer is making (created O_EXCL|O_NOFOLLOW, renamed into place when whole); a
#: writer removes one only when it is provably that page of its own journal
TMP_SUFFIX = ".tmp"
#: ``<page>.zst``: a sealed page ``kftools archive`` compressed (zstd seekable format, see codec.py)
ARCHIVE_SUFFIX = ".zst"
#: ``<file>.part``: what archive and unarchive are writing (never ``.tmp``, which writers clean up as theirs)
PART_SUFFIX = ".part"
#: ``<journal>.checksums``: CRC-32 records of sealed pages (CHECKSUM_RECORD)
CHECKSUMS_SUFFIX = ".checksums"
#: ``<journal>.readers``: named followers' positions (READERS_HEADER, READER_SLOT)
READERS_SUFFIX = ".readers"
#: ``.<name>.kftmp-<pid>-<random>``: a temporary a command builds output ``<name>`` in (outputs.py); the pid
#: says whose it is, so a later run removes a killed one's and nothing else
TMP_TAG = ".kftmp-"
TMP_NAME = re.compile(r"^\..+\.kftmp-(\d+)-[A-Za-z0-9_]+$")
#: files kftools keeps beside a journal (reader positions, sealed-page checksums and summaries, archived pages,
#: temporaries)
SIDECAR_SUFFIXES = (READERS_SUFFIX, CHECKSUMS_SUFFIX, SUMMARIES_SUFFIX, ARCHIVE_SUFFIX, PART_SUFFIX, TYPES_SUFFIX)
#: the suffixes the C++ header declares too (its names: kTmpSuffix, kArchiveSuffix, ...)
FILE_NAMES = {"Tmp": TMP_SUFFIX, "Archive": ARCHIVE_SUFFIX, "Checksums": CHECKSUMS_SUFFIX, "Readers": READERS_SUFFIX}


def page_path(first_page: str | os.PathLike, index: int) -> str:
    """Path of page ``index``: the first page is the path itself, page n is ``<path>.<n>``."""
    first = os.fspath(first_page)
    return first if index == 0 else f"{first}.{index}"


def tmp_page_path(page_file: str) -> str:
    """Where a writer makes a page before renaming it to ``page_file``."""
    return page_file + TMP_SUFFIX


def pid_tmp_path(path: str) -> str:
    """A temporary this process builds ``path`` in before renaming it into place: ``<path>.<pid>.tmp``."""
    return f"{path}.{os.getpid()}{TMP_SUFFIX}"


def archive_path(page_file: str | os.PathLike) -> str:
    """The archive that stands for ``page_file`` once ``kftools archive`` compressed it."""
    return os.fspath(page_file) + ARCHIVE_SUFFIX


def checksums_path(journal: str | os.PathLike) -> str:
    return os.fspath(journal) + CHECKSUMS_SUFFIX


def readers_path(journal: str | os.PathLike) -> str:
    return os.fspath(journal) + READERS_SUFFIX


def page_number(first_page: str, name: str) -> int | None:
    """Which page of the journal whose first page is ``first_page`` the file ``name`` (in the same folder)
    is by kftools' naming rule, or None."""
    base = os.path.basename(first_page)
    if name == base:
        return 0
    stem, dot, n = name.rpartition(".")
    return int(n) if dot and stem == base and n.isdigit() and n[0] != "0" else None


@dataclass(frozen=True)
class JournalFormat:
    """What the page set and the one walk need to know about a family of journals.

    ``page_header`` and ``frame_header`` are the two header layouts (the frame
    header has ``length`` and ``msg_type`` fields); ``first_page`` is the index
    of a journal's first page; ``length_counts_header`` says whether a frame's
    ``length`` includes its header (Kungfu) or only the payload (kftools);
    ``page_end_type`` is the msg_type of a frame that seals a page (Kungfu's
    ``PageEnd``), which the walk consumes instead of handing out. The naming
    rule: ``page_path(first, n)`` is the file of page n of the journal whose
    first page is ``first``, ``page_number(first, name)`` its inverse for a file
    name in the same folder (None when the file is no page of it).
    """

    name: str
    page_header: Layout
    frame_header: Layout
    first_page: int = 0
    length_counts_header: bool = False
    page_end_type: int | None = None
    page_path: Callable[[str, int], str] = page_path
    page_number: Callable[[str, str], int | None] = page_number
    #: kftools' own layout: a write cursor that writers publish (followers spin or park on it) and frames
    #: whose length counts the payload only, which the C paths (scanner, frame stream, merge) read as is
    native: bool = False

    @property
    def frame_header_size(self) -> int:
        return self.frame_header.size

    @property
    def type_offset(self) -> int:
        return self.frame_header.offset("msg_type")

    @property
    def frame_start(self) -> int:
        """Offset of the first frame in a page."""
        return self.page_header.size


#: kftools' own journals.
KFTOOLS = JournalFormat("kftools", PAGE_HEADER, FRAME_HEADER, native=True)


def format_tables() -> str:
    """The Markdown tables of FORMAT.md, generated from the layouts above."""
    parts = [
        "### Page header (64 bytes)\n\n" + PAGE_HEADER.markdown_table(),
        "### Frame header (32 bytes)\n\n" + FRAME_HEADER.markdown_table(),
    ]
    for t, layout in BUILTIN_LAYOUTS.items():
        parts.append(
            f"### Payload `{t.value}` {layout.name} ({layout.size} bytes, at frame offset 32)\n\n"
            + layout.markdown_table()
        )
    return "\n\n".join(parts) + "\n"


def sidecar_tables() -> str:
    """The Markdown tables of FORMAT.md's "Files beside a journal" section."""
    parts = []
    for layout in (READERS_HEADER, READER_SLOT, CHECKSUM_RECORD, PAGE_SUMMARY, SUMMARY_TYPE, ARCHIVE_HEADER):
        parts.append(f"#### {layout.name} ({layout.size} bytes)\n\n{layout.doc}\n\n" + layout.markdown_table())
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(format_tables())
    print(sidecar_tables())
