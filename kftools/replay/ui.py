"""Terminal side of ``kftools replay``: keys that pause and step, a live progress bar, the summary lines."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from .core import Controller, Replay, ReplayStats

SPACE = " "
RIGHT_ARROWS = ("\x1b[C", "\x1bOC")  # the arrow in normal and in application cursor mode


def handle_key(controller: Controller, key: str) -> bool:
    """Act on one key (as a terminal sends it): space toggles pause, right arrow steps.

    False if the key means nothing here.
    """
    if key == SPACE:
        controller.toggle()
    elif key in RIGHT_ARROWS:
        controller.step()
    else:
        return False
    return True


class KeyReader:
    """Feeds a terminal's keys to a :class:`Controller` from a thread (cbreak mode; Ctrl-C still works)."""

    def __init__(self, controller: Controller, fd: int | None = None):
        self.controller = controller
        self.fd = sys.stdin.fileno() if fd is None else fd
        self._done = threading.Event()
        self._saved: list[Any] | None = None  # termios attributes to restore
        self._thread: threading.Thread | None = None

    def start(self) -> KeyReader:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self._thread = threading.Thread(target=self._run, name="kftools-keys", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import select

        while not self._done.is_set():
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            key = os.read(self.fd, 1).decode("latin-1")
            if key == "\x1b":  # an escape sequence: the rest follows at once
                while select.select([self.fd], [], [], 0.01)[0] and len(key) < 3:
                    key += os.read(self.fd, 1).decode("latin-1")
            handle_key(self.controller, key)

    def stop(self) -> None:
        import termios

        self._done.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None


class Progress:
    """A rich progress bar on stderr, refreshed from a thread so the replay loop never draws."""

    def __init__(self, rep: Replay, interval: float = 0.1):
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.rep = rep
        self.interval = interval
        self._bar = RichProgress(
            TextColumn("[bold]replay[/] {task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._task = self._bar.add_task("", total=None, info="")
        self._done = threading.Event()
        self._span: int | None = None
        self._thread = threading.Thread(target=self._run, name="kftools-progress", daemon=True)

    def __enter__(self) -> Progress:
        # Drawing takes milliseconds of Python; with the default 5 ms GIL switch
        # interval it would hold back the emitting thread that long. A short
        # interval interleaves the two, bounding that delay near 100 µs.
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(100e-6)
        self._bar.start()
        self._thread.start()
        threading.Thread(target=self._measure, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(1.0)
        self._bar.stop()
        sys.setswitchinterval(self._switch)

    def _measure(self) -> None:
        # the selection's recording span, for the bar's total; a separate reader, off the hot loop
        from ..journal.merge import open_journals

        try:
            with open_journals(self.rep.inputs, registry=self.rep.registry) as r:  # type: ignore[union-attr]
                f = self.rep.selection.filters()
                first = next(iter(r.batches(batch_size=1, until=self.rep.end_position, **f)), None)
                last = r.last(1, until=self.rep.end_position, **f)
                if first is not None and last:
                    self._span = max(1, last[0].gen_time - int(first.headers["gen_time"][0]))
        except Exception:  # noqa: BLE001 - the bar just stays indeterminate
            pass

    def _run(self) -> None:
        st, rep = self.rep.stats, self.rep
        while not self._done.wait(self.interval):
            loops = "forever" if rep.loops == 0 else rep.loops
            desc = f"loop {st.loop + 1}/{loops}" if rep.loops != 1 else ""
            if st.following:
                desc = "following"
            if rep.controller.paused:
                desc += " [yellow]paused[/] (space resumes, → steps)"
            speed = "max" if st.speed is None else f"x{st.speed:g}"
            info = f"{st.frames:,} frames  {speed}"
            if self._span and not st.following:
                self._bar.update(self._task, total=self._span, completed=min(st.position_ns, self._span))
            self._bar.update(self._task, description=desc, info=info)


def summary_lines(st: ReplayStats) -> list[str]:
    """The end-of-replay summary, as text lines."""
    d = st.to_dict()

    def us(v):
        return "-" if v is None else f"{v / 1000:,.1f} µs"

    speed = "max" if st.speed is None else f"x{st.speed:g}"
    achieved = "-" if d["achieved_speed"] is None else f"x{d['achieved_speed']:,.3f}"
    rate = "-" if d["frames_per_s"] is None else f"{d['frames_per_s']:,.0f} frames/s"
    lines = [
        f"replayed {st.frames:,} frame(s) into {st.out}" + (" (interrupted)" if st.interrupted else ""),
        f"wall time      {d['wall_s']:.3f} s  ({rate})" + (f", {d['paused_s']:.3f} s of it paused" if st.paused_ns else ""),
        f"speed          asked {speed}, achieved {achieved}",
        f"lateness       p50 {us(d['lateness_p50_ns'])}  p99 {us(d['lateness_p99_ns'])}  "
        f"max {us(d['lateness_max_ns'])}  ({d['late_over_1ms']:,} frame(s) later than 1 ms)",
    ]
    if st.loops_done > 1 or (st.loops_done == 0 and not st.following and st.frames):
        lines.append(f"loops          {st.loops_done}")
    if st.orders:
        lines.append(f"orders         {st.orders_sent:,} sent to {st.orders}")
    summary = st.strategy_summary
    if isinstance(summary, dict):
        lines.append("strategy       " + "  ".join(f"{k} {_value(v)}" for k, v in summary.items()))
    elif summary is not None:
        lines.append(f"strategy       {_value(summary)}")
    return lines


def _value(v) -> str:
    """Exact numbers (repr for floats), dicts as k=v."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return repr(v) if isinstance(v, float) else str(v)
