"""What the monitor measures about one journal, incrementally, on each check.

A :class:`JournalWatch` keeps a read-only :class:`Reader` and the position it
has counted to; each :meth:`JournalWatch.sample` reads only the frames
committed since (batch API), so a check costs what was written meanwhile.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import KftoolsError, NotAJournal
from ..journal.checksums import record_checksums
from ..journal.format import PAGE_HEADER_SIZE, WriterState
from ..journal.pages import PageSet
from ..journal.positions import ReaderLag, reader_lags
from ..journal.reader import Reader
from ..journal.registry import TypeRegistry
from ..journal.summaries import PageSummary, Summaries

#: buckets (seconds) of the gen_time - trigger_time histogram: 1 us .. 10 s
LATENCY_BUCKETS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1, 1.0, 10.0)
_BUCKET_EDGES_NS = np.array([int(round(b * 1e9)) for b in LATENCY_BUCKETS], dtype=np.int64)


@dataclass
class JournalSample:
    """One journal at one check."""

    journal: str
    readable: bool = True
    problem: str | None = None  # why it could not be read (missing, not a journal...)
    frames_total: int = 0
    bytes_total: int = 0
    write_rate: float = 0.0  # frames/s since the previous check
    pages: int = 0
    page_fill: float = 0.0
    newest_gen_time: int | None = None
    newest_age_seconds: float | None = None
    silent_for: float | None = None
    writer_state: WriterState = WriterState.UNKNOWN
    writer_pid: int = 0
    damage: str | None = None
    disk_free_bytes: int = 0
    readers: list[ReaderLag] = field(default_factory=list)
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0

    def observations(self) -> list[tuple[str, str | None, dict]]:
        """What alert rules look at: the journal's measures, then each live reader's."""
        silent = self.silent_for if self.writer_state in (WriterState.ALIVE, WriterState.UNKNOWN) else None
        obs: list[tuple[str, str | None, dict]] = [(self.journal, None, {
            "writer_crashed": self.writer_state == WriterState.CRASHED,
            "damaged": self.damage is not None or not self.readable,
            "silent_for": silent,
            "disk_free": self.disk_free_bytes if self.readable else None,
            "page_fill": self.page_fill if self.readable else None,
        })]
        for r in self.readers:
            if r.entry.state == "alive":
                obs.append((self.journal, r.entry.name,
                            {"lag_seconds": r.seconds, "lag_frames": r.frames, "lag_bytes": r.bytes}))
        return obs

    def to_dict(self) -> dict:
        return {
            "journal": self.journal, "readable": self.readable, "problem": self.problem,
            "frames_total": self.frames_total, "bytes_total": self.bytes_total, "write_rate": self.write_rate,
            "pages": self.pages, "page_fill": self.page_fill, "newest_gen_time": self.newest_gen_time,
            "newest_age_seconds": self.newest_age_seconds, "silent_for": self.silent_for,
            "writer_state": self.writer_state, "writer_pid": self.writer_pid, "damage": self.damage,
            "disk_free_bytes": self.disk_free_bytes, "readers": [r.to_dict() for r in self.readers],
            "trigger_latency": {"count": self.latency_count, "sum_seconds": self.latency_sum},
        }


class JournalWatch:
    """Counts a journal's frames incrementally and samples its state on demand.

    The first page's identity (device, inode) is checked on every sample: a journal removed is
    reported as such (not as a readable journal whose writer crashed), and one created again under
    the same name is counted afresh from its first frame. Damage is looked for again on every check,
    so a journal made sound (``recover --in-place``, a resumed writer) clears and is counted on.
    """

    def __init__(self, path: str, registry: TypeRegistry | None = None, clock=time.time_ns, *,
                 checksums: bool = True):
        self.path = path
        self.registry = registry
        self.clock = clock
        self.checksums = checksums  # False: write nothing beside the journal (monitor --once)
        self.reader: Reader | None = None
        self._reset()

    def _reset(self) -> None:
        """Forget everything counted: a new journal (or none) is at the path."""
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        self.identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the first page counted
        self.position = (0, PAGE_HEADER_SIZE)
        self.state = JournalSample(self.path)
        self._last_check: tuple[int, int] | None = None  # (monotonic ns, frames_total)
        self._last_growth_ns: int | None = None  # wall ns when the count last grew
        self._checksummed_pages = 0

    def _check_identity(self) -> None:
        """Start over when the first page is not the file counted so far (removed, or created again)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.identity is not None:
                self._reset()
                raise NotAJournal(f"{self.path}: removed") from None
            return  # never seen: opening it says why
        if self.identity is not None and (st.st_dev, st.st_ino) != self.identity:
            self._reset()
        if self.identity is None:
            self.identity = (st.st_dev, st.st_ino)

    def sample(self) -> JournalSample:
        now = self.clock()
        try:
            self._check_identity()
            s = self.state
            if s.damage is not None and self.reader is not None:
                self.reader.close()  # look again with fresh eyes: the damage may have been cut off
                self.reader = None
            if self.reader is None:
                self.reader = Reader(self.path, registry=self.registry)
            if self.reader.end_position() < self.position:
                # cut below what was counted (recover --in-place, seen half done): count it again from the start
                identity = self.identity
                self._reset()
                self.identity, s = identity, self.state
                self.reader = Reader(self.path, registry=self.registry)
            self._count_new(s)
            r = self.reader
            s.readable, s.problem = True, None
            s.pages = r.page_count()
            last = r.page(r.first_page + max(s.pages - 1, 0))  # a Kungfu journal's pages count from 1
            s.page_fill = min(last.cursor, last.limit()) / last.capacity if last.capacity else 0.0
            s.writer_state, s.writer_pid = r.writer_state()
            try:
                s.readers = reader_lags(r, end=self.position, newest=s.newest_gen_time)
            except KftoolsError as e:  # the positions file is bad, not the journal
                s.readers, s.problem = [], str(e)
            if self.checksums and s.pages != self._checksummed_pages:
                self._record_checksums(s.pages)
        except (KftoolsError, OSError) as e:
            s = self.state
            if self.reader is not None:
                self.reader.close()
                self.reader = None
            if own_trouble(e):
                raise MonitorTrouble(f"{self.path}: {e}") from None
            s.readable, s.problem = False, str(e)
            s.writer_state, s.writer_pid = WriterState.UNKNOWN, 0
        s.disk_free_bytes = _disk_free(self.path)
        mono = time.monotonic_ns()
        if self._last_check is not None and mono > self._last_check[0]:
            s.write_rate = (s.frames_total - self._last_check[1]) / ((mono - self._last_check[0]) / 1e9)
        if self._last_check is not None and s.frames_total > self._last_check[1]:
            self._last_growth_ns = now
        self._last_check = (mono, s.frames_total)
        if s.newest_gen_time is not None:
            s.newest_age_seconds = max(0, now - s.newest_gen_time) / 1e9
            # the newest gen_time says when the writer last wrote; a writer whose clock differs from ours
            # (or a replay) is judged by when this monitor last saw the count grow, whichever is later
            since = max(s.newest_gen_time, self._last_growth_ns or s.newest_gen_time)
            s.silent_for = max(0, now - since) / 1e9
        return s

    def _record_checksums(self, pages: int) -> None:
        """Checksum pages sealed since the last check (off the writer's path: here, in the monitor)."""
        try:
            record_checksums(self.path)
            self._checksummed_pages = pages
        except (KftoolsError, OSError):
            pass  # a read-only folder: verify then checks structure only; the metrics go on

    def _count_new(self, s: JournalSample) -> None:
        r = self.reader
        assert r is not None
        end = r.end_position()
        if self.position < (r.first_page, r.fmt.frame_start):
            self.position = (r.first_page, r.fmt.frame_start)  # a Kungfu journal: page 1, after its header
        if end <= self.position:
            if s.damage is not None:  # was damaged: walk what is left to the journal's end, as verify would
                for _ in r.batches(start=self.position, batch_size=1 << 20):
                    pass  # frames a writer added meanwhile are counted at the next check
                s.damage = None if r.damage is None else str(r.damage)
            return
        sums = Summaries(r.pages, record=self.checksums)

        def summarised(p: PageSummary) -> None:
            # a sealed page's summary: no walk (its trigger latencies are not observed: the histogram counts the
            # frames this monitor walked)
            s.frames_total += p.frames
            s.bytes_total += p.frame_bytes
            if p.frames:
                s.newest_gen_time = p.last_time
            self.position = (p.index, p.cursor)

        for b in r.batches(start=self.position, until=end, batch_size=1 << 16, skip=sums.skipper(summarised)):
            PageSet.release(b.page, 0, int(b.offsets[-1]))
            h = b.headers
            s.frames_total += len(b)
            hsize = b.page.frame_header_size  # 32, or a Kungfu generation's frame header
            s.bytes_total += int(h["length"].sum(dtype=np.int64)) + hsize * len(b)
            s.newest_gen_time = int(h["gen_time"][-1])
            trig = h["trigger_time"]
            has = trig != 0
            if has.any():
                lat = h["gen_time"][has] - trig[has]
                counts = np.bincount(np.searchsorted(_BUCKET_EDGES_NS, lat, side="left"),
                                     minlength=len(LATENCY_BUCKETS) + 1)
                for i, c in enumerate(counts.tolist()):
                    s.latency_buckets[i] += c
                s.latency_sum += float(lat.sum()) / 1e9
                s.latency_count += int(has.sum())
            last = int(b.offsets[-1]) + hsize + int(h["length"][-1])
            self.position = (b.page.index, last)
        sums.save()
        if r.damage is not None:
            s.damage = str(r.damage)
        else:
            s.damage = None
            self.position = max(self.position, end)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class MonitorTrouble(KftoolsError):
    """The monitor itself could not look (out of file descriptors or memory): no verdict on the journal."""


_OWN_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOMEM)


def own_trouble(e: BaseException) -> bool:
    """An error that says the monitor ran out of something (descriptors, memory), not that the journal is bad;
    the library wraps the OSError (``raise ... from None`` keeps it as ``__context__``)."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _OWN_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    return any(os.strerror(n) in str(e) for n in _OWN_ERRNOS)


def _disk_free(path: str) -> int:
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    except OSError:
        return 0
