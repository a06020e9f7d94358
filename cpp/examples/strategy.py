"""A Python strategy following the journal hybrid_engine writes.

    python cpp/examples/strategy.py JOURNAL [--frames N] [--window 20] [--wait busy|backoff] [--idle 2.0]

Prints a moving average of last_price per symbol every ``--every`` tickers, and
the orders the C++ listener placed; exits after N frames or ``--idle`` seconds
without a frame.
"""

from __future__ import annotations

import argparse
import collections

import kftools
from kftools import MsgType


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("journal")
    ap.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until idle)")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--every", type=int, default=1000, help="print the averages every N tickers")
    ap.add_argument("--wait", choices=["busy", "backoff"], default="backoff")
    ap.add_argument("--idle", type=float, default=2.0, help="exit after this many idle seconds")
    args = ap.parse_args(argv)

    reader = kftools.Reader.wait_open(args.journal)
    windows: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=args.window))
    seen = tickers = orders = 0
    for frame in reader.follow(wait=args.wait, idle_timeout=args.idle):
        seen += 1
        if frame.msg_type == MsgType.TICKER:
            tickers += 1
            windows[frame.symbol].append(frame.last_price)
            if tickers % args.every == 0:
                avgs = "  ".join(f"{s}={sum(w) / len(w):.2f}" for s, w in sorted(windows.items()))
                print(f"[{tickers}] ma{args.window}: {avgs}", flush=True)
        elif frame.msg_type == MsgType.ORDER:
            orders += 1
            lag_us = (frame.gen_time - frame.trigger_time) / 1e3
            print(f"order {frame.client_order_id} {frame.symbol} @ {frame.price:.2f} ({lag_us:.1f} us after its tick)")
        if args.frames and seen >= args.frames:
            break
    if reader.damage:
        print(f"stopped at damage: {reader.damage}")
        return 3
    print(f"done: {seen} frames, {tickers} tickers, {orders} orders")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
