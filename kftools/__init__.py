"""kftools: tools for the memory-mapped journals low-latency trading engines write."""

from . import sweep  # kftools.sweep(...) runs a sweep: the package is callable (kftools/sweep/__init__.py)
from .errors import (
    CorruptJournal,
    FrameTooLarge,
    JournalChanged,
    JournalLocked,
    KftoolsError,
    MissingExtra,
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
    BackoffWait,
    BusyWait,
    Damage,
    Frame,
    FrameBatch,
    MergedBatch,
    MergedReader,
    MsgType,
    OrderType,
    ParkWait,
    Reader,
    Side,
    SleepWait,
    TypeRegistry,
    WaitPolicy,
    Writer,
    load_registry,
    open_many,
    recover,
    register_type,
    verify,
)
from .journal.format import FillFlag, Liquidity, OrderStatus, RejectReason, WriterState
from .journal.reader import use_table_builder


def _table(reader, **filters):
    # Reader.to_arrow: the export's column builder, imported (with pyarrow) only when a table is asked for
    from .export.tables import reader_table

    return reader_table(reader, **filters)


use_table_builder(_table)


def __getattr__(name: str):
    # kftools.backtest(recording, strategy, ...) is the backtest package itself (callable), imported on first
    # use: reading journals needs none of its modules
    if name == "backtest":
        import importlib

        return importlib.import_module(".backtest", __name__)
    raise AttributeError(f"module 'kftools' has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = [
    "CorruptJournal", "Damage", "Frame", "FrameBatch", "FrameTooLarge", "JournalChanged", "JournalLocked", "KftoolsError", "MergedBatch", "MissingExtra",
    "MergedReader", "MsgType", "NotAJournal", "OrderType", "OutputError", "Reader", "SchemaError", "Side",
    "StrategyError", "TypeRegistry", "UnknownType", "UnreadablePage", "UnsupportedVersion", "UsageError", "WaitPolicy", "Writer",
    "load_registry", "open_many", "recover", "register_type", "verify",
    "FillFlag", "Liquidity", "OrderStatus", "RejectReason", "backtest", "sweep",
    "BackoffWait", "BusyWait", "ParkWait", "SleepWait", "WriterState",
]
