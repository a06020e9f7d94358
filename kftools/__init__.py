"""kftools: tools for the memory-mapped journals low-latency trading engines write."""

from .errors import (
    CorruptJournal,
    FrameTooLarge,
    JournalLocked,
    KftoolsError,
    NotAJournal,
    SchemaError,
    UnknownType,
    UnsupportedVersion,
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

__version__ = "0.1.0"
__all__ = [
    "CorruptJournal", "Damage", "Frame", "FrameBatch", "FrameTooLarge", "JournalLocked", "KftoolsError", "MergedBatch",
    "MergedReader", "MsgType", "NotAJournal", "open_many", "OrderType", "Reader", "SchemaError", "Side", "TypeRegistry", "UnknownType", "UnsupportedVersion",
    "WaitPolicy", "Writer", "load_registry", "recover", "register_type", "verify",
]
