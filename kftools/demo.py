"""``make demo``: a simulated feed in the background, ``kftools tail`` on it in the foreground.

The feed ends when the view quits. Without a terminal (CI), the tail prints
its first plain lines instead (as many as ``plain_lines``), and the demo exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading


def main(rate: float = 20_000.0, plain_lines: int = 20, timeout: float = 120.0) -> int:
    tty = sys.stdout.isatty() and sys.stdin.isatty()
    with tempfile.TemporaryDirectory(prefix="kftools-demo-") as tmp:
        path = os.path.join(tmp, "feed.dat")
        feed = subprocess.Popen(
            [sys.executable, "-m", "kftools.cli", "simulate", path, "--rate", str(rate), "--duration", "86400",
             "--page-size", str(64 * 1024 * 1024)],
            stderr=subprocess.DEVNULL,
        )
        try:
            if tty:
                from .journal.registry import DEFAULT_REGISTRY
                from .tui.app import TailApp

                TailApp(path, DEFAULT_REGISTRY).run()
                return 0
            # the first lines the tail prints, however slow the machine (the timeout only guards a hang)
            tail = subprocess.Popen([sys.executable, "-m", "kftools.cli", "tail", "--plain", "-n", "5", path],
                                    stdout=subprocess.PIPE, text=True)
            guard = threading.Timer(timeout, tail.kill)
            guard.start()
            try:
                for _, line in zip(range(plain_lines), tail.stdout or (), strict=False):
                    sys.stdout.write(line)
                sys.stdout.flush()
            finally:
                guard.cancel()
                tail.send_signal(signal.SIGINT)
                tail.communicate(timeout=timeout)
            return 0
        finally:
            feed.send_signal(signal.SIGINT)  # simulate stops cleanly and closes the journal
            try:
                feed.wait(timeout=10)
            except subprocess.TimeoutExpired:
                feed.kill()
                feed.wait()


if __name__ == "__main__":
    sys.exit(main())
