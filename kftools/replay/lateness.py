"""Each replayed frame's lateness, kept without the emitting thread faulting in fresh memory."""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

from ..journal.pretouch import pretoucher

#: frames a block holds (8 MiB of int64); the next block is made when one is half full
BLOCK = 1 << 20
#: bytes a block is kept faulted in past its fill: 128 Ki frames
AHEAD = 1 << 20


class LatenessLog:
    """An append-only int64 log in blocks of anonymous memory that a pretoucher faults in ahead of the fill.

    Kept in growing numpy arrays, the log made the emitting thread take a page fault every 512 frames on
    fresh heap memory (650 in a 200,000-frame replay), and a first touch can take milliseconds here.
    """

    def __init__(self, block: int = BLOCK) -> None:
        self._block_len = block
        self._clear()

    def _clear(self) -> None:
        self._full: list[np.ndarray] = []
        self._cur: np.ndarray | None = None
        self._fill = 0
        self._toucher: Any = None
        self._next: tuple[np.ndarray, Any] | None = None

    def _block(self) -> tuple[np.ndarray, Any]:
        mm = mmap.mmap(-1, self._block_len * 8, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        return np.frombuffer(mm, np.int64), pretoucher(mm, len(mm), AHEAD)

    def reserve(self) -> None:
        """Make the first block now, so it is faulted in before the first frame goes out."""
        if self._cur is None:
            self._cur, self._toucher = self._block()

    def append(self, values: np.ndarray) -> None:
        k = 0
        while k < len(values):
            self.reserve()
            cur = self._cur
            assert cur is not None
            take = min(self._block_len - self._fill, len(values) - k)
            cur[self._fill : self._fill + take] = values[k : k + take]
            self._fill += take
            k += take
            if self._toucher is not None:
                self._toucher.advance(self._fill * 8)
            if self._next is None and self._fill > self._block_len // 2:
                self._next = self._block()
            if self._fill == self._block_len:
                self._stop()
                self._full.append(cur)
                self._cur, self._toucher = self._next if self._next is not None else self._block()
                self._next, self._fill = None, 0

    def _stop(self) -> None:
        if self._toucher is not None:
            self._toucher.stop()
            self._toucher = None

    def finish(self) -> np.ndarray:
        """Everything appended, as one array; the log is empty again."""
        self._stop()
        parts = self._full + ([self._cur[: self._fill]] if self._cur is not None else [])
        out = np.concatenate(parts) if parts else np.empty(0, np.int64)
        if self._next is not None and self._next[1] is not None:
            self._next[1].stop()
        self._clear()
        return out
