"""kftools: tools for the memory-mapped journals low-latency trading engines write."""

from . import sweep  # kftools.sweep(...) runs a sweep: the package is callable (kftools/sweep/__init__.py)
from .errors import (
    CorruptJournal,
    FrameTooLarge,
    JournalChanged,
    JournalLocked,
    KftoolsError,
    NotAJournal,
    OutputError,
    SchemaError,
    StrategyError,
    UnknownType,
    UnreadablePage,
    UnsupportedVersion,
    UsageError,
)
from .journal import (
    Damage,
    Frame,
    FrameBatch,
    MergedBatch,
    MergedReader,
    MsgType,
    OrderType,
    Reader,
    Side,
    TypeRegistry,
    WaitPolicy,
    Writer,
    load_registry,
    open_many,
    recover,
    register_type,
    verify,
)
from .journal.format import FillFlag, Liquidity, OrderStatus, RejectReason

__version__ = "0.1.0"
__all__ = [
    "CorruptJournal", "Damage", "Frame", "FrameBatch", "FrameTooLarge", "JournalChanged", "JournalLocked", "KftoolsError", "MergedBatch",
    "MergedReader", "MsgType", "NotAJournal", "OrderType", "OutputError", "Reader", "SchemaError", "Side",
    "StrategyError", "TypeRegistry", "UnknownType", "UnreadablePage", "UnsupportedVersion", "UsageError", "WaitPolicy", "Writer",
    "load_registry", "open_many", "recover", "register_type", "verify",
    "FillFlag", "Liquidity", "OrderStatus", "RejectReason", "sweep",
]
