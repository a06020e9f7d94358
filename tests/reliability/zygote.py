"""A writer factory for kill -9 runs: imports kftools once, then forks one writer per command.

stdin: ``write PATH PAGE_SIZE`` forks a writer (answers its pid), ``reap PID`` waits for it
(answers its wait status). The writer appends Ticker frames "SEQ" whose last_price is a sequence
number continuing from the last committed frame, with varying padding, until it is killed.
"""

import os
import sys

import kftools


def writer(path: str, page_size: int) -> None:
    start = 0
    try:
        with kftools.Reader(path) as r:
            last = r.last(1)
            start = int(last[0].last_price) + 1 if last else 0
    except kftools.NotAJournal:
        pass
    try:
        w = kftools.Writer(path, page_size=page_size, append=True)
    except kftools.KftoolsError as e:
        print(f"writer: {e}", file=sys.stderr, flush=True)
        os._exit(3)
    i = start
    while True:
        w.write_ticker("SEQ", float(i), padding=i % 40)
        i += 1


def main() -> None:
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "write":
            pid = os.fork()
            if pid == 0:
                try:
                    writer(args[0], int(args[1]))
                finally:
                    os._exit(1)
            print(pid, flush=True)
        elif cmd == "reap":
            _, status = os.waitpid(int(args[0]), 0)
            print(status, flush=True)


if __name__ == "__main__":
    main()
