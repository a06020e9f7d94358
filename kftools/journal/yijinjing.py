"""Kungfu's own journals (yijinjing, Kungfu 2.4, journal version 4), declared once.

Kungfu is the trading system whose journal design kftools follows; its own
journals differ from kftools' format: a 24-byte page header without a write
cursor, a 36-byte frame header whose ``length`` counts the header itself, a
``PageEnd`` frame that seals a page, pages named ``{dest:08x}.{page_id}.journal``
from id 1, and the packed "longfist" message types. Everything the reader
needs (struct formats, dtypes, field names, enum names) derives from the
declarations here; the walk is kftools' own (:mod:`kftools.journal.reader`).
Facts: ``tests/data/kungfu/README.md``-style notes in README.md, "Kungfu journals".
"""

from __future__ import annotations

import enum
import json
import os
import re
from dataclasses import dataclass

from .format import JournalFormat
from .layout import Field, Layout
from .registry import TypeRegistry

VERSION = 4

PAGE_HEADER = Layout(
    "KungfuPageHeader",
    [
        Field("version", "u32", "journal version, 4"),
        Field("page_header_length", "u32", "24: the first frame starts here"),
        Field("page_size", "u32", "size of the page file in bytes"),
        Field("frame_header_length", "u32", "36 (later Kungfu releases: 57, 65)"),
        Field("last_frame_position", "u64", "offset of the last frame written (its start, not its end)"),
    ],
    "24-byte header at offset 0 of every Kungfu page file.",
)
assert PAGE_HEADER.size == 24

FRAME_HEADER = Layout(
    "KungfuFrameHeader",
    [
        Field("length", "u32", "bytes of the frame, this header included; 0: nothing written here yet"),
        Field("header_length", "u32", "36"),
        Field("gen_time", "i64", "ns since the epoch when the frame was written"),
        Field("trigger_time", "i64", "ns; the time of the event that caused it"),
        Field("msg_type", "i32", "longfist type id; a frame is there when length > 0 and msg_type > 0"),
        Field("source", "u32", "writer's location uid (MurmurHash3 x86_32 of category/group/name/mode, seed 42)"),
        Field("dest", "u32", "reader's location uid, 0 public"),
    ],
    "36-byte header in front of every Kungfu payload.",
)
assert FRAME_HEADER.size == 36


class MsgType(enum.IntEnum):
    """The longfist type ids kftools decodes by name (Kungfu 2.4 numbering)."""

    Quote = 101
    Entrust = 102
    Transaction = 103
    OrderInput = 201
    Order = 203
    Trade = 204
    PageEnd = 10000
    SessionStart = 10001
    SessionEnd = 10002


class InstrumentType(enum.IntEnum):
    Unknown = 0
    Stock = 1
    Future = 2
    Bond = 3
    StockOption = 4
    TechStock = 5
    Fund = 6
    Index = 7
    Repo = 8
    Warrant = 9
    Iopt = 10
    Crypto = 11


class ExecType(enum.IntEnum):
    Unknown = 0
    Cancel = 1
    Trade = 2


class BsFlag(enum.IntEnum):
    Unknown = 0
    Buy = 1
    Sell = 2


class Side(enum.IntEnum):
    Buy = 0
    Sell = 1
    Lock = 2
    Unlock = 3
    Exec = 4
    Drop = 5
    Purchase = 6
    Redemption = 7
    Split = 8
    Merge = 9
    MarginTrade = 10
    ShortSell = 11
    RepayMargin = 12
    RepayStock = 13
    CashRepayMargin = 14
    StockRepayStock = 15
    SurplusStockTransfer = 16
    GuaranteeStockTransferIn = 17
    GuaranteeStockTransferOut = 18
    Unknown = 99


class Offset(enum.IntEnum):
    Open = 0
    Close = 1
    CloseToday = 2
    CloseYesterday = 3


class HedgeFlag(enum.IntEnum):
    Speculation = 0
    Arbitrage = 1
    Hedge = 2
    Covered = 3


class PriceType(enum.IntEnum):
    Limit = 0
    Any = 1
    FakBest5 = 2
    ForwardBest = 3
    ReverseBest = 4
    Fak = 5
    Fok = 6
    Unknown = 7


class VolumeCondition(enum.IntEnum):
    Any = 0
    Min = 1
    All = 2


class TimeCondition(enum.IntEnum):
    IOC = 0
    GFD = 1
    GTC = 2


class OrderStatus(enum.IntEnum):
    Unknown = 0
    Submitted = 1
    Pending = 2
    Cancelled = 3
    Error = 4
    Filled = 5
    PartialFilledNotActive = 6
    PartialFilledActive = 7
    Lost = 8


def _enum(name: str, kind: type[enum.IntEnum]) -> Field:
    return Field(name, "i8", f"enum {kind.__name__}", labels=kind)


_MARKET = [
    Field("trading_day", "char[9]"),
    Field("data_time", "i64"),
    Field("instrument_id", "char[32]"),
    Field("exchange_id", "char[16]"),
    _enum("instrument_type", InstrumentType),
]
_ORDER_FLAGS = [
    Field("is_swap", "bool"),
    _enum("side", Side),
    _enum("offset", Offset),
    _enum("hedge_flag", HedgeFlag),
    _enum("price_type", PriceType),
    _enum("volume_condition", VolumeCondition),
    _enum("time_condition", TimeCondition),
]

QUOTE = Layout(
    "Quote",
    [
        *_MARKET,
        *(Field(n, "f64") for n in ("pre_close_price", "pre_settlement_price", "last_price")),
        Field("volume", "i64"),
        *(Field(n, "f64") for n in (
            "turnover", "pre_open_interest", "open_interest", "open_price", "high_price", "low_price",
            "upper_limit_price", "lower_limit_price", "close_price", "settlement_price", "iopv",
        )),
        Field("bid_price", "f64[10]"),
        Field("ask_price", "f64[10]"),
        Field("bid_volume", "i64[10]"),
        Field("ask_volume", "i64[10]"),
        Field("trading_phase_code", "char[8]"),
    ],
    "msg_type 101.",
)
ENTRUST = Layout(
    "Entrust",
    [
        *_MARKET,
        Field("price", "f64"),
        Field("volume", "i64"),
        _enum("side", Side),
        _enum("price_type", PriceType),
        *(Field(n, "i64") for n in ("main_seq", "seq", "orig_order_no", "biz_index")),
    ],
    "msg_type 102.",
)
TRANSACTION = Layout(
    "Transaction",
    [
        *_MARKET,
        Field("price", "f64"),
        Field("volume", "i64"),
        Field("bid_no", "i64"),
        Field("ask_no", "i64"),
        _enum("exec_type", ExecType),
        _enum("bs_flag", BsFlag),
        *(Field(n, "i64") for n in ("main_seq", "seq", "biz_index")),
    ],
    "msg_type 103.",
)
ORDER_INPUT = Layout(
    "OrderInput",
    [
        Field("order_id", "u64"),
        Field("parent_id", "u64"),
        Field("instrument_id", "char[32]"),
        Field("exchange_id", "char[16]"),
        _enum("instrument_type", InstrumentType),
        Field("limit_price", "f64"),
        Field("frozen_price", "f64"),
        Field("volume", "i64"),
        *_ORDER_FLAGS,
        Field("block_id", "u64"),
        Field("insert_time", "i64"),
    ],
    "msg_type 201.",
)
ORDER = Layout(
    "Order",
    [
        Field("order_id", "u64"),
        Field("external_order_id", "char[32]"),
        Field("parent_id", "u64"),
        Field("insert_time", "i64"),
        Field("update_time", "i64"),
        Field("trading_day", "char[9]"),
        Field("instrument_id", "char[32]"),
        Field("exchange_id", "char[16]"),
        _enum("instrument_type", InstrumentType),
        Field("limit_price", "f64"),
        Field("frozen_price", "f64"),
        Field("volume", "i64"),
        Field("volume_left", "i64"),
        Field("tax", "f64"),
        Field("commission", "f64"),
        _enum("status", OrderStatus),
        Field("error_id", "i32"),
        Field("error_msg", "char[256]"),
        *_ORDER_FLAGS,
    ],
    "msg_type 203.",
)
TRADE = Layout(
    "Trade",
    [
        Field("trade_id", "u64"),
        Field("order_id", "u64"),
        Field("external_order_id", "char[32]"),
        Field("external_trade_id", "char[32]"),
        Field("trade_time", "i64"),
        Field("trading_day", "char[9]"),
        Field("instrument_id", "char[32]"),
        Field("exchange_id", "char[16]"),
        _enum("instrument_type", InstrumentType),
        _enum("side", Side),
        _enum("offset", Offset),
        _enum("hedge_flag", HedgeFlag),
        Field("price", "f64"),
        Field("volume", "i64"),
        Field("tax", "f64"),
        Field("commission", "f64"),
    ],
    "msg_type 204.",
)
MARK = Layout("Mark", [], "a mark without data")

LAYOUTS: dict[MsgType, Layout] = {
    MsgType.Quote: QUOTE,
    MsgType.Entrust: ENTRUST,
    MsgType.Transaction: TRANSACTION,
    MsgType.OrderInput: ORDER_INPUT,
    MsgType.Order: ORDER,
    MsgType.Trade: TRADE,
    MsgType.SessionStart: MARK,
    MsgType.SessionEnd: MARK,
}
_SIZES = {MsgType.Quote: 514, MsgType.Entrust: 116, MsgType.Transaction: 124, MsgType.OrderInput: 112,
          MsgType.Order: 438, MsgType.Trade: 181}
assert all(LAYOUTS[t].size == n for t, n in _SIZES.items()), "longfist layouts drifted from Kungfu 2.4's sizes"

def kungfu_page_path(first_page: str, page_id: int) -> str:
    """Kungfu's naming rule: page ``page_id`` of the journal whose first page is ``first_page``
    (``{dest:08x}.{page_id}.journal`` in the same folder)."""
    parsed = parse_page_name(first_page)
    if parsed is None:
        raise ValueError(f"{first_page}: not a Kungfu page file name")
    return os.path.join(os.path.dirname(first_page), page_file_name(parsed[0], page_id))


def kungfu_page_number(first_page: str, name: str) -> int | None:
    """Which page of ``first_page``'s journal the file ``name`` is, or None."""
    mine, other = parse_page_name(first_page), parse_page_name(name)
    return other[1] if mine and other and other[0] == mine[0] else None


#: The walk's view of a Kungfu journal.
FORMAT = JournalFormat(
    name="kungfu",
    page_header=PAGE_HEADER,
    frame_header=FRAME_HEADER,
    first_page=1,
    length_counts_header=True,
    page_end_type=int(MsgType.PageEnd),
    page_path=kungfu_page_path,
    page_number=kungfu_page_number,
)

#: The longfist types by name; other types stay raw bytes (or text, when they hold JSON).
REGISTRY = TypeRegistry.declared(
    {int(t): (t.name, layout) for t, layout in LAYOUTS.items()}, symbol_field="instrument_id", json_text=True
)


# -- later generations ----------------------------------------------------------------------------------------
# Each generation is one more declaration: its page and frame header layouts, how its page header says which it
# is, and its longfist types. The page set and the one walk read every generation the same way.


class FrameDataType(enum.IntEnum):
    """``data_type`` of a later frame header: the payload is a packed struct (Raw) or JSON text (Json)."""

    Raw = 0
    Json = 1
    Unknown = 2


class PageStatus(enum.IntEnum):
    """``status`` of a wire-v1 page header: a page made ahead of time (PreOpen) holds no frame yet."""

    Normal = 0
    PreOpen = 1


_LATER_FRAME = [
    *FRAME_HEADER.fields,
    Field("data_type", "i8", "0 Raw (a packed struct), 1 Json (JSON text)", FrameDataType),
    Field("initial_source", "u32", "location uid of the frame's first writer"),
    Field("frame_uid", "u64", "the frame's key"),
    Field("trigger_frame_uid", "u64", "frame_uid of the frame its writer was reading when it wrote this one"),
]
#: Later Kungfu 2.x (kungfu-systems/kungfu before its v4 line): version 4 pages, 57-byte packed frame headers.
FRAME_HEADER_57 = Layout("KungfuFrameHeader57", _LATER_FRAME, "57-byte packed frame header of later Kungfu 2.x.")
#: ... and 65 bytes once ``stream_id`` was added.
FRAME_HEADER_65 = Layout(
    "KungfuFrameHeader65", [*_LATER_FRAME, Field("stream_id", "u64")], "65-byte packed frame header of later Kungfu 2.x."
)
assert (FRAME_HEADER_57.size, FRAME_HEADER_65.size) == (57, 65)

#: Kungfu v4 "journal wire v1": the page header's first u32 is this declared format epoch, not a version.
WIRE_V1_EPOCH = 0xE3B24C8D
WIRE_V1_PAGE_HEADER = Layout(
    "KungfuWireV1PageHeader",
    [
        Field("version", "u32", "journal format epoch, 0xe3b24c8d (3820113037)"),
        Field("page_header_length", "u32", "32"),
        Field("page_size", "u64", "size of the page file in bytes"),
        Field("frame_header_length", "u32", "72"),
        Field("status", "i8", "0 Normal, 1 PreOpen (made ahead of time, no frame yet)", PageStatus),
        Field("_pad0", "u8[3]", "alignment"),
        Field("last_frame_position", "u64", "offset of the last frame written (its start)"),
    ],
    "32-byte naturally aligned header of a Kungfu v4 (journal wire v1) page.",
)
WIRE_V1_FRAME_HEADER = Layout(
    "KungfuWireV1FrameHeader",
    [
        *FRAME_HEADER.fields[:4],
        Field("msg_type", "i32", "`carrier_type` in Kungfu v4's headers"),
        *FRAME_HEADER.fields[5:],
        Field("data_type", "i8", "0 Raw, 1 Json", FrameDataType),
        Field("_pad0", "u8[3]", "alignment"),
        Field("initial_source", "u32", "location uid of the frame's first writer"),
        Field("_pad1", "u8[4]", "alignment"),
        Field("journal_frame_uid", "u64", "(page_id << 32) + the frame number in the page"),
        Field("trigger_frame_uid", "u64"),
        Field("stream_id", "u64"),
    ],
    "72-byte naturally aligned frame header of Kungfu v4 (journal wire v1); `length` is published last.",
)
assert (WIRE_V1_PAGE_HEADER.size, WIRE_V1_FRAME_HEADER.size) == (32, 72)
assert WIRE_V1_PAGE_HEADER.offset("last_frame_position") == 24


class LaterMsgType(enum.IntEnum):
    """The longfist type ids of later Kungfu 2.x (kungfu-systems/kungfu ``longfist/types.h``), renumbered."""

    OrderInput = 201
    Order = 202
    Trade = 203
    Quote = 401
    Entrust = 402
    Transaction = 403
    PageEnd = 10051
    SessionStart = 10151
    SessionEnd = 10152


class WireV1MsgType(enum.IntEnum):
    """The journal types Kungfu v4's schema core declares (trading types are not part of it)."""

    PageEnd = 10051
    Location = 10205  # a data type holding strings: JSON text


def _i8(name: str, what: str) -> Field:
    # later releases renumbered some enums: shown as numbers, never with 2.4's names
    return Field(name, "i8", f"enum {what}")


_LATER_MARKET = [
    Field("data_time", "i64"),
    Field("instrument_id", "char[32]"),
    Field("exchange_id", "char[16]"),
    _i8("instrument_type", "InstrumentType"),
]
_LATER_FLAGS = [Field("is_swap", "bool"), *(_i8(n, n) for n in (
    "side", "offset", "hedge_flag", "price_type", "volume_condition", "time_condition"))]
LATER_LAYOUTS: dict[LaterMsgType, Layout] = {
    LaterMsgType.Quote: Layout("Quote", [
        *_LATER_MARKET,
        *(Field(n, "f64") for n in (
            "pre_close_price", "pre_settlement_price", "last_price", "volume", "turnover", "pre_open_interest",
            "open_interest", "open_price", "high_price", "low_price", "upper_limit_price", "lower_limit_price",
            "close_price", "settlement_price", "iopv", "total_bid_volume", "total_ask_volume")),
        Field("total_trade_num", "i64"),
        *(Field(n, "f64[10]") for n in ("bid_price", "ask_price", "bid_volume", "ask_volume")),
        Field("trading_phase_code", "char[8]"),
    ], "msg_type 401."),
    LaterMsgType.Entrust: Layout("Entrust", [
        *_LATER_MARKET, Field("price", "f64"), Field("volume", "f64"), _i8("side", "Side"),
        _i8("price_type", "PriceType"), *(Field(n, "i64") for n in ("main_seq", "seq", "orig_order_no", "biz_index")),
    ], "msg_type 402."),
    LaterMsgType.Transaction: Layout("Transaction", [
        *_LATER_MARKET, Field("price", "f64"), Field("volume", "f64"), Field("bid_no", "i64"), Field("ask_no", "i64"),
        _i8("exec_type", "ExecType"), _i8("side", "Side"), *(Field(n, "i64") for n in ("main_seq", "seq", "biz_index")),
    ], "msg_type 403."),
    LaterMsgType.OrderInput: Layout("OrderInput", [
        Field("order_id", "u64"), Field("parent_id", "u64"), Field("instrument_id", "char[32]"),
        Field("exchange_id", "char[16]"), Field("contract_id", "char[64]"), _i8("instrument_type", "InstrumentType"),
        Field("limit_price", "f64"), Field("frozen_price", "f64"), Field("volume", "f64"), *_LATER_FLAGS,
        Field("block_id", "u64"), Field("insert_time", "i64"),
    ], "msg_type 201."),
    LaterMsgType.Order: Layout("Order", [
        Field("order_id", "u64"), Field("external_order_id", "char[32]"), Field("parent_id", "u64"),
        *(Field(n, "i64") for n in ("insert_time", "update_time", "restore_time")), Field("trading_day", "char[16]"),
        Field("instrument_id", "char[32]"), Field("exchange_id", "char[16]"), Field("contract_id", "char[64]"),
        _i8("instrument_type", "InstrumentType"),
        *(Field(n, "f64") for n in ("limit_price", "frozen_price", "volume", "volume_left", "tax", "commission")),
        _i8("status", "OrderStatus"), Field("error_id", "i32"), Field("error_msg", "char[256]"), *_LATER_FLAGS,
    ], "msg_type 202."),
    LaterMsgType.Trade: Layout("Trade", [
        Field("trade_id", "u64"), Field("order_id", "u64"), Field("parent_order_id", "u64"),
        Field("external_order_id", "char[32]"), Field("external_trade_id", "char[32]"), Field("trade_time", "i64"),
        Field("restore_time", "i64"), Field("trading_day", "char[16]"), Field("instrument_id", "char[32]"),
        Field("exchange_id", "char[16]"), Field("contract_id", "char[64]"), _i8("instrument_type", "InstrumentType"),
        _i8("side", "Side"), _i8("offset", "Offset"), _i8("hedge_flag", "HedgeFlag"),
        *(Field(n, "f64") for n in ("price", "volume", "tax", "commission")),
    ], "msg_type 203."),
    LaterMsgType.SessionStart: MARK,
    LaterMsgType.SessionEnd: MARK,
}
LATER_REGISTRY = TypeRegistry.declared(
    {int(t): (t.name, layout) for t, layout in LATER_LAYOUTS.items()}, symbol_field="instrument_id", json_text=True
)
WIRE_V1_REGISTRY = TypeRegistry.declared({}, symbol_field="instrument_id", json_text=True)


def _format(name: str, page_header: Layout, frame_header: Layout, page_end: int) -> JournalFormat:
    return JournalFormat(name=name, page_header=page_header, frame_header=frame_header, first_page=1,
                         length_counts_header=True, page_end_type=page_end, page_path=kungfu_page_path,
                         page_number=kungfu_page_number)


@dataclass(frozen=True)
class Generation:
    """One generation of Kungfu journals: how its page header says so (``version``: 4, or a format epoch),
    its header layouts (the walk's :class:`JournalFormat`), its longfist types, and where its facts come from."""

    name: str
    version: int
    fmt: JournalFormat
    registry: TypeRegistry
    msg_types: type[enum.IntEnum]
    source: str

    @property
    def page_end(self) -> int:
        return int(self.fmt.page_end_type or 0)

    @property
    def session_start(self) -> int | None:
        m = self.msg_types.__members__.get("SessionStart")
        return int(m) if m is not None else None


KUNGFU_2_4 = Generation("kungfu-2.4", VERSION, FORMAT, REGISTRY, MsgType,
                        "kungfu-origin/kungfu v2.4.77: longfist/types.h, yijinjing/journal/{frame,page}.h")
KUNGFU_2_X_57 = Generation("kungfu-2.x-57", VERSION, _format("kungfu-2.x-57", PAGE_HEADER, FRAME_HEADER_57, 10051),
                           LATER_REGISTRY, LaterMsgType, "later Kungfu 2.x frame_header (57 bytes, packed)")
KUNGFU_2_X_65 = Generation("kungfu-2.x-65", VERSION, _format("kungfu-2.x-65", PAGE_HEADER, FRAME_HEADER_65, 10051),
                           LATER_REGISTRY, LaterMsgType,
                           "kungfu-systems/kungfu longfist/core.h + types.h (65-byte packed frame header)")
KUNGFU_WIRE_V1 = Generation(
    "kungfu-wire-v1", WIRE_V1_EPOCH,
    _format("kungfu-wire-v1", WIRE_V1_PAGE_HEADER, WIRE_V1_FRAME_HEADER, int(WireV1MsgType.PageEnd)),
    WIRE_V1_REGISTRY, WireV1MsgType,
    "kungfu-systems/kungfu libyijinjing schema/core.h, layout_fingerprint.h, tests/fixtures/journal-wire-v1.json",
)
#: every generation kftools reads, oldest first
GENERATIONS = (KUNGFU_2_4, KUNGFU_2_X_57, KUNGFU_2_X_65, KUNGFU_WIRE_V1)
BY_NAME = {g.name: g for g in GENERATIONS}
#: the most bytes a page header of any generation needs to say which generation it is
HEAD_SIZE = max(g.fmt.page_header.size for g in GENERATIONS)


def generation_of(path: str, head: bytes) -> Generation | None:
    """The generation of a Kungfu page whose first bytes are ``head``; None when it is no Kungfu page header.

    Raises :class:`~kftools.errors.UnsupportedVersion` for a page that says it is Kungfu's but in an epoch or
    layout this kftools does not know: it is refused by name, never misread with another layout.
    """
    from ..errors import UnsupportedVersion

    if len(head) < 8:
        return None
    version, phl = int.from_bytes(head[:4], "little"), int.from_bytes(head[4:8], "little")
    for g in GENERATIONS:
        ph = g.fmt.page_header
        if version != g.version or phl != ph.size or len(head) < ph.size:
            continue
        if ph.unpack(head)["frame_header_length"] == g.fmt.frame_header.size:
            return g
    if version == VERSION and phl == PAGE_HEADER.size and len(head) >= PAGE_HEADER.size:
        fhl = PAGE_HEADER.unpack(head)["frame_header_length"]
        raise UnsupportedVersion(f"{path}: Kungfu journal (version 4) with {fhl}-byte frame headers, a layout this"
                                 " kftools does not know (it reads 36, 57 and 65)")
    if version == WIRE_V1_EPOCH:
        raise UnsupportedVersion(f"{path}: Kungfu journal wire v1 page with a {phl}-byte page header, a layout this"
                                 " kftools does not know")
    if version & 1 and version > 0xFFFF and 16 <= phl <= 4096 and phl % 4 == 0:
        # Kungfu v4 derives each format epoch from its header layouts, with the low bit set
        raise UnsupportedVersion(f"{path}: Kungfu journal format epoch {version:#010x} is newer than this kftools"
                                 " knows (it reads version 4 and epoch 0xe3b24c8d, journal wire v1)")
    return None

def made_ahead(path: str) -> bool:
    """Whether the wire-v1 page file ``path`` was made ahead of time and not begun yet (``status`` PreOpen);
    False for a file that cannot be read (opening it says why)."""
    size = WIRE_V1_PAGE_HEADER.size
    try:
        with open(path, "rb") as fh:
            head = fh.read(size)
    except OSError:
        return False
    return len(head) == size and WIRE_V1_PAGE_HEADER.unpack(head)["status"] == PageStatus.PreOpen


_PAGE_NAME = re.compile(r"^([0-9a-f]{8})\.(\d+)\.journal$")
_MODES = ("live", "data", "replay", "backtest")


def detect(head: bytes) -> bool:
    """True when ``head`` (a page's first bytes) is a Kungfu page header of a generation kftools reads."""
    try:
        return generation_of("", head) is not None
    except Exception:  # a Kungfu page of an unknown generation: not one kftools reads
        return False


def page_file_name(dest: int, page_id: int) -> str:
    return f"{dest:08x}.{page_id}.journal"


def parse_page_name(path: str) -> tuple[int, int] | None:
    """``(dest, page_id)`` of a Kungfu page file name, or None."""
    m = _PAGE_NAME.match(os.path.basename(path))
    return (int(m.group(1), 16), int(m.group(2))) if m else None


@dataclass(frozen=True)
class KungfuJournal:
    """One Kungfu journal: a ``journal/{mode}`` folder and a dest."""

    folder: str
    dest: int

    def page_path(self, page_id: int) -> str:
        return os.path.join(self.folder, page_file_name(self.dest, page_id))

    @property
    def first_page(self) -> str:
        return self.page_path(FORMAT.first_page)

    @property
    def location(self) -> str:
        """``category/group/name/mode`` from the folder's place under ``runtime``."""
        parts = os.path.normpath(os.path.abspath(self.folder)).split(os.sep)
        if len(parts) >= 6 and parts[-2] == "journal":
            return "/".join([*parts[-5:-2], parts[-1]])
        if len(parts) >= 6 and parts[-5] == "journal" and parts[-6] == "runtime":
            return "/".join(parts[-4:])  # later 2.x releases: runtime/journal/{category}/{group}/{name}/{mode}
        return self.folder

    @property
    def name(self) -> str:
        """How kftools shows the journal: its location and dest (``td/sim/acct1/live/00000000``)."""
        return f"{self.location}/{self.dest:08x}"

    def __str__(self) -> str:
        return self.name


def journals_in(folder: str) -> list[KungfuJournal]:
    """The journals of one ``journal/{mode}`` folder: one per dest holding a page file."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    dests = sorted({p[0] for n in names if (p := parse_page_name(n))})
    return [KungfuJournal(folder, d) for d in dests]


def find_journals(path: str) -> list[KungfuJournal]:
    """Every Kungfu journal ``path`` names: a page file (its journal), a ``journal/{mode}``
    folder (one journal per dest), or any folder above them (``KF_HOME``, ``runtime``: all of them)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        p = parse_page_name(path)
        return [KungfuJournal(os.path.dirname(path) or ".", p[0])] if p else []
    found = journals_in(path)
    if found:
        return found
    out: list[KungfuJournal] = []
    # symlinked folders are followed (a category on another disk is a common layout), each folder once:
    # a link back up the tree, or a second link to the same folder, is not walked again
    seen: set[tuple[int, int]] = set()
    for root, dirs, _files in os.walk(path, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        if os.path.basename(os.path.dirname(root)) == "journal" or os.path.basename(root) in _MODES:
            out.extend(journals_in(root))
    return out


def json_text(payload: bytes) -> str | None:
    """The payload as text when it is a JSON document (Kungfu writes Config, TimeValue... so), else None."""
    body = payload.rstrip(b"\0")
    if not body or body[:1] not in b"{[":
        return None
    try:
        text = body.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return text


def layout_tables() -> str:
    """The header tables docs/kungfu.md carries, generated from the declarations above (the 57-byte header is
    the 65-byte one without ``stream_id``)."""
    parts = []
    for layout in (PAGE_HEADER, FRAME_HEADER, FRAME_HEADER_65, WIRE_V1_PAGE_HEADER, WIRE_V1_FRAME_HEADER):
        parts.append(f"#### {layout.name} ({layout.size} bytes)\n\n{layout.doc}\n\n{layout.markdown_table()}\n")
    return "\n".join(parts)
