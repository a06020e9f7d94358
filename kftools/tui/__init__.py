"""The Textual live view behind ``kftools tail`` (imports Textual: keep it out of the core)."""

from .app import TailApp, format_lag
from .index import JournalIndex, RowFilter

__all__ = ["JournalIndex", "RowFilter", "TailApp", "format_lag"]
