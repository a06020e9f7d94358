"""The journal core: format, writer, reader, recovery. No UI imports here."""

from .format import DEFAULT_PAGE_SIZE, MsgType, OrderType, Side, page_path
from .merge import MergedBatch, MergedReader, open_many
from .reader import Damage, Frame, FrameBatch, Reader, WaitPolicy
from .recovery import RecoverResult, VerifyReport, recover, verify
from .registry import DEFAULT_REGISTRY, MessageType, TypeRegistry, register_type
from .schemas import load_registry
from .wait import BackoffWait, BusyWait, ParkWait, SleepWait
from .writer import Writer

__all__ = [
    "BackoffWait", "BusyWait", "DEFAULT_PAGE_SIZE", "DEFAULT_REGISTRY", "Damage", "Frame", "FrameBatch", "MergedBatch", "MergedReader", "MessageType", "MsgType", "OrderType",
    "Reader", "RecoverResult", "Side", "TypeRegistry", "VerifyReport", "WaitPolicy", "Writer", "load_registry",
    "ParkWait", "SleepWait", "open_many", "page_path", "recover", "register_type", "verify",
]
