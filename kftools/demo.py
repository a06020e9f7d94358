"""``make demo``: a simulated feed in the background, ``kftools tail`` on it in the foreground.

The feed ends when the view quits. Without a terminal (CI), the tail prints
plain lines instead until ``plain_lines`` have been shown, and the demo exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile


def main(rate: float = 20_000.0, plain_lines: int = 20) -> int:
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
            tail = subprocess.Popen([sys.executable, "-m", "kftools.cli", "tail", "--plain", "-n", "5", path],
                                    stdout=subprocess.PIPE, text=True)
            assert tail.stdout is not None
            try:
                # stop after a number of lines, not a number of seconds: a loaded machine is slow to start
                for shown, line in enumerate(tail.stdout, 1):
                    sys.stdout.write(line)
                    if shown >= plain_lines:
                        break
                sys.stdout.flush()
            finally:
                tail.stdout.close()  # a tail blocked writing to a full pipe gets EPIPE and leaves quietly
                tail.send_signal(signal.SIGINT)
                _stop(tail)
            return 0
        finally:
            feed.send_signal(signal.SIGINT)  # simulate stops cleanly and closes the journal
            _stop(feed)


def _stop(proc: subprocess.Popen, grace: float = 60.0) -> None:
    """Wait for a process told to stop; kill it only if it has not within ``grace`` seconds."""
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
