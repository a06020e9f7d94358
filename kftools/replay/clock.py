"""Time and control of a replay: the real clock, a clock tests drive, and pause/step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class MonotonicClock:
    """Real time. ``wait_until`` sleeps for the long part of a wait and spins for the last stretch."""

    def __init__(self, spin_ns: int = 120_000, slice_ns: int = 20_000_000):
        # Spinning through long stretches invites the scheduler to preempt us for
        # milliseconds on a busy machine; sleeping overshoots by the timer slack
        # (50 µs by default, so we lower it) plus wake-up time: spin only the last stretch.
        _lower_timer_slack()
        self.spin_ns = spin_ns
        self.slice_ns = slice_ns  # longest single sleep: pause and Ctrl-C stay responsive
        self.now = time.perf_counter_ns  # CLOCK_MONOTONIC on Linux
        self.wall = time.time_ns

    def sleep_until(self, deadline: int, interrupted: Callable[[], bool]) -> int:
        """Sleep until monotonic ``deadline`` (ns) is at most ``spin_ns`` away, or ``interrupted()``;
        returns the time reached. The last stretch is the caller's to spin (C pacer or ``wait_until``)."""
        now_f = self.now
        now = now_f()
        while deadline - now > self.spin_ns:
            time.sleep(min(deadline - now - self.spin_ns, self.slice_ns) / 1e9)
            now = now_f()
            if interrupted():
                return now
        return now

    def wait_until(self, deadline: int, interrupted: Callable[[], bool]) -> int:
        """Wait until monotonic ``deadline`` (ns) or ``interrupted()``; returns the time reached."""
        now = self.sleep_until(deadline, interrupted)
        if deadline - now > self.spin_ns:
            return now  # interrupted
        now_f = self.now
        while now < deadline:
            now = now_f()
        return now

    def sleep(self, ns: int) -> None:
        time.sleep(ns / 1e9)


def _lower_timer_slack() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK: 1 µs for this thread
    except (OSError, AttributeError):
        pass


class ManualClock:
    """A clock tests drive: waiting jumps time forward, firing callbacks scheduled with ``at``."""

    def __init__(self, start: int = 1_000_000_000, wall_offset: int = 1_700_000_000_000_000_000):
        self.t = start
        self.wall_offset = wall_offset
        self._events: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0

    def now(self) -> int:
        return self.t

    def wall(self) -> int:
        return self.t + self.wall_offset

    def at(self, t: int, fn: Callable[[], None]) -> None:
        """Call ``fn`` when time reaches ``t`` (monotonic ns)."""
        self._seq += 1
        self._events.append((t, self._seq, fn))
        self._events.sort()

    def _advance(self, target: int) -> bool:
        """Move towards ``target``, stopping at the next event; True if an event fired."""
        if self._events and self._events[0][0] <= target:
            t, _s, fn = self._events.pop(0)
            self.t = max(self.t, t)
            fn()
            return True
        self.t = max(self.t, target)
        return False

    def wait_until(self, deadline: int, interrupted: Callable[[], bool]) -> int:
        while self.t < deadline:
            if self._advance(deadline) and interrupted():
                break
        return self.t

    def sleep(self, ns: int) -> None:
        self._advance(self.t + ns)


# -- pause and step ---------------------------------------------------------------------
class Controller:
    """Pause, resume and single-step a replay (the terminal's keys drive it: see ``replay.ui``)."""

    def __init__(self, paused: bool = False):
        self.paused = paused
        self._steps = 0
        self._lock = threading.Lock()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def toggle(self) -> None:
        self.paused = not self.paused

    def step(self) -> None:
        """Emit one frame now; only while paused."""
        with self._lock:
            if self.paused:
                self._steps += 1

    def take_step(self) -> bool:
        with self._lock:
            if self._steps:
                self._steps -= 1
                return True
            return False

