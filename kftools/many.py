"""``info`` and ``verify`` over several journals (or folders): a row per journal, a total, the worst status.

Each journal is clean, damaged, or unreadable (the error that kept it from
being read). The CLI turns that into a status per journal (its exit-code
table, passed in as ``status_of``); the status of the whole is the highest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import KftoolsError
from .info import JournalInfo, journal_info
from .journal.recovery import VerifyReport, verify
from .journal.registry import TypeRegistry
from .journal.resolve import resolve_journals
from .timeparse import format_time


@dataclass
class Row:
    """One journal of a summary: its report, or the error that kept it from being read."""

    path: str
    report: JournalInfo | VerifyReport | None = None
    error: KftoolsError | None = None

    @property
    def damaged(self) -> bool:
        if self.error is not None or self.report is None:
            return False
        if isinstance(self.report, JournalInfo):
            return self.report.damage is not None
        return not self.report.clean


Status = Callable[[Row], int]  # a journal's exit status (the CLI's table decides it)


@dataclass
class Summary:
    """Several journals' info or verify reports and their total."""

    kind: str  # "info" or "verify"
    rows: list[Row] = field(default_factory=list)

    def status(self, status_of: Status) -> int:
        """The worst status of the journals."""
        return max((status_of(r) for r in self.rows), default=0)

    def _frames(self, r: Row) -> int:
        return r.report.frames if r.report is not None else 0

    def _span(self, r: Row) -> tuple[int | None, int | None]:
        if isinstance(r.report, JournalInfo):
            return r.report.first_gen_time, r.report.last_gen_time
        if isinstance(r.report, VerifyReport):
            return r.report.first_time, r.report.last_time
        return None, None

    def _pages(self, r: Row) -> int:
        if isinstance(r.report, JournalInfo):
            return r.report.pages
        return len(r.report.pages) if r.report is not None else 0

    def _health(self, r: Row) -> str:
        if r.error is not None:
            return f"unreadable: {r.error}"
        if isinstance(r.report, JournalInfo):
            return "ok" if r.report.damage is None else f"damaged: {r.report.damage}"
        if r.report is None or r.report.clean:
            return "clean"
        return f"damaged: {r.report.damage}"

    def total(self, status_of: Status | None = None) -> dict:
        spans = [self._span(r) for r in self.rows]
        firsts = [a for a, _ in spans if a is not None]
        lasts = [b for _, b in spans if b is not None]
        return {
            "journals": len(self.rows),
            "pages": sum(self._pages(r) for r in self.rows),
            "frames": sum(self._frames(r) for r in self.rows),
            "first_gen_time": min(firsts, default=None),
            "last_gen_time": max(lasts, default=None),
            "clean": sum(r.error is None and not r.damaged for r in self.rows),
            "damaged": sum(r.damaged for r in self.rows),
            "unreadable": sum(r.error is not None for r in self.rows),
            **({"status": self.status(status_of)} if status_of is not None else {}),
        }

    def table(self) -> list[list[str]]:
        """Rows of text: a header, one line per journal, the total."""
        def t(ns):
            return "-" if ns is None else format_time(ns)

        head = ["journal", "pages", "frames", "first gen_time", "last gen_time"]
        if self.kind == "info":
            head.append("writer")
        head.append("health")
        out = [head]
        for r in self.rows:
            first, last = self._span(r)
            line = [r.path, f"{self._pages(r):,}", f"{self._frames(r):,}", t(first), t(last)]
            if self.kind == "info":
                rep = r.report
                line.append(f"{rep.writer_state}" if isinstance(rep, JournalInfo) else "-")
            line.append(self._health(r))
            out.append(line)
        tot = self.total()
        bad = [f"{tot['damaged']} damaged"] if tot["damaged"] else []
        bad += [f"{tot['unreadable']} unreadable"] if tot["unreadable"] else []
        line = [f"total: {tot['journals']} journals", f"{tot['pages']:,}", f"{tot['frames']:,}",
                t(tot["first_gen_time"]), t(tot["last_gen_time"])]
        if self.kind == "info":
            line.append("")
        line.append(", ".join(bad) or ("ok" if self.kind == "info" else "clean"))
        out.append(line)
        return out

    def lines(self) -> list[str]:
        """The table as aligned text lines."""
        rows = self.table()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip() for r in rows]

    def to_dict(self, status_of: Status) -> dict:
        return {
            "journals": [
                {"path": r.path, "status": status_of(r),
                 **({"error": str(r.error)} if r.error is not None else {}),
                 **(r.report.to_dict() if r.report is not None else {})}
                for r in self.rows
            ],
            "total": self.total(status_of),
        }


def summarize(kind: str, paths: Sequence[str | os.PathLike], registry: TypeRegistry | None = None) -> Summary:
    """``info`` or ``verify`` of every journal in ``paths`` (folders expanded), read-only."""
    run = journal_info if kind == "info" else verify
    out = Summary(kind)
    for ref in resolve_journals(paths):
        try:
            report = run(ref.path, registry)
            report.path = ref.label  # a Kungfu journal by its location (and the folders that tell two apart)
            out.rows.append(Row(ref.label, report=report))
        except KftoolsError as e:
            out.rows.append(Row(ref.label, error=e))
    return out
