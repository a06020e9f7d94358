"""How a follower waits when there is nothing new: wait policies, chosen once (Agrona's IdleStrategy).

A policy is a small object the follower rules call (:class:`WaitPolicy`): ``idle(work_count)`` after a
poll that found ``work_count`` frames (0: wait once, by the policy), ``reset()`` when frames arrive.
Two attributes tell a frame stream (the per-frame follower, in C) how to poll before it calls back:
``stream_spins`` cursor loads, then, when ``park_ns`` is set, a futex wait on the cursor of up to
``park_ns`` that the writer ends when it publishes (see ``cursor.h``).

- :class:`BusyWait` spins: the lowest latency while the follower has a core of its own.
- :class:`BackoffWait` spins, then sleeps progressively longer: low CPU, sub-ms latency when busy.
- :class:`SleepWait` polls every ``interval`` seconds.
- :class:`ParkWait` spins briefly, then parks on the write cursor until the writer wakes it: for a
  shared host, where a spinning follower competes with the writer and other processes for the cores.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from ..errors import UsageError

#: cursor loads a busy follower makes in C between two checks of stop, idle_timeout and rollover
BUSY_SPINS = 1 << 17


@runtime_checkable
class WaitPolicy(Protocol):
    """What a follower calls when a poll found nothing (``idle(0)``) and when frames came (``reset()``)."""

    #: cursor loads a frame stream makes in C before it parks or calls back
    stream_spins: int
    #: after those loads, wait on the cursor up to this many ns for the writer's wake (0: never park)
    park_ns: int

    def idle(self, work_count: int = 0) -> bool:
        """Wait once if ``work_count`` is 0 (else reset); True if this wait slept, a good moment for slower checks."""
        ...

    def reset(self) -> None:
        """Frames arrived: the next wait starts from the beginning."""
        ...


class BusyWait:
    """Spin: never sleeps, never yields the core."""

    stream_spins = BUSY_SPINS
    park_ns = 0

    def idle(self, work_count: int = 0) -> bool:
        return False

    def reset(self) -> None:
        pass

    def __repr__(self) -> str:
        return "BusyWait()"


class BackoffWait:
    """Spin ``spins`` polls, then sleep 10 µs, doubling up to ``max_sleep`` seconds."""

    stream_spins = 1
    park_ns = 0

    def __init__(self, spins: int = 20000, max_sleep: float = 0.002):
        self.spins = spins
        self.max_sleep = max_sleep
        self._idle = 0
        self._sleep = 10e-6

    def idle(self, work_count: int = 0) -> bool:
        if work_count:
            self.reset()
            return False
        self._idle += 1
        if self._idle < self.spins:
            return False
        time.sleep(self._sleep)
        self._sleep = min(self._sleep * 2, self.max_sleep)
        return True

    def reset(self) -> None:
        self._idle = 0
        self._sleep = 10e-6

    def __repr__(self) -> str:
        return f"BackoffWait(spins={self.spins}, max_sleep={self.max_sleep})"


class SleepWait:
    """Poll every ``interval`` seconds."""

    stream_spins = 1
    park_ns = 0

    def __init__(self, interval: float = 0.001):
        self.interval = interval

    def idle(self, work_count: int = 0) -> bool:
        if work_count:
            return False
        time.sleep(self.interval)
        return True

    def reset(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"SleepWait(interval={self.interval})"


class ParkWait:
    """Spin ``spins`` cursor loads (a few µs), then park on the write cursor until the writer publishes.

    The writer wakes parked followers only when the page header's ``waiters`` count says some are
    parked, so a writer with busy followers pays one load per commit. ``timeout`` bounds one park
    (then the follower makes its slower checks: stop, idle timeout, rollover, and parks again); it is
    also the longest a frame waits when no writer wakes the follower (a writer of another format, a
    follower that may not write to the page file to count itself). Where there is no cursor to park on
    (a page not yet created, another format), it backs off as :class:`BackoffWait` does with sleeps of
    up to ``timeout``.
    """

    def __init__(self, spins: int = 4096, timeout: float = 0.01):
        if spins < 1 or not 0 < timeout <= 60:
            raise UsageError(f"park: spins {spins} must be >= 1 and timeout {timeout} in (0, 60] seconds")
        self.stream_spins = spins
        self.park_ns = int(timeout * 1e9)
        self._fallback = BackoffWait(spins=0, max_sleep=timeout)

    def idle(self, work_count: int = 0) -> bool:
        return self._fallback.idle(work_count)

    def reset(self) -> None:
        self._fallback.reset()

    def __repr__(self) -> str:
        return f"ParkWait(spins={self.stream_spins}, timeout={self.park_ns / 1e9})"


POLICIES = {"busy": BusyWait, "backoff": BackoffWait, "sleep": SleepWait, "park": ParkWait}


def wait_policy(wait: str | WaitPolicy) -> WaitPolicy:
    """The policy named ``wait`` (busy, backoff, sleep, park) with its defaults, or ``wait`` itself."""
    if isinstance(wait, str):
        cls = POLICIES.get(wait)
        if cls is None:
            raise UsageError(f"unknown wait policy {wait!r} ({', '.join(POLICIES)})")
        return cls()
    if not isinstance(wait, WaitPolicy):
        raise UsageError(f"wait must be a policy name ({', '.join(POLICIES)}) or a WaitPolicy, not {wait!r}")
    return wait


__all__ = ["BUSY_SPINS", "POLICIES", "BackoffWait", "BusyWait", "ParkWait", "SleepWait", "WaitPolicy", "wait_policy"]
