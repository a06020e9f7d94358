"""A strategy in its own process, as in production: ``kftools replay --order-journal``.

    # terminal 1: the replay (the exchange); it waits for the strategy's order journal
    kftools replay rec.dat --max -o out.dat --order-journal strat.orders.dat --fill-model queue
    # terminal 2: the strategy process
    python examples/strategy_process.py examples/strategy_example.py --output out.dat --orders strat.orders.dat

It runs any in-process strategy class (``examples/strategy_example.py``,
``examples/strategy_maker.py``, yours) unchanged in its own process: it
follows the replay's output with ``kftools.Reader``, writes the strategy's
Order and CancelRequest frames into its own order journal with
``kftools.Writer``, and an Ack frame each time it has caught up with the
output. OrderUpdate and Fill frames addressed to ``--source`` come back in the
output. With the replay in ``--lockstep`` (its default) the fills and P&L are
those of ``kftools replay rec.dat --strategy ...`` (docs/backtest.md). Prints
the strategy's summary as JSON when the replay has closed its output.
"""

from __future__ import annotations

import argparse
import json
import sys

from kftools import KftoolsError
from kftools.backtest.remote import run_strategy
from kftools.replay import load_strategy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("strategy", help="path.py[:Class], as for replay --strategy")
    ap.add_argument("--output", required=True, help="the replay's output journal (waited for)")
    ap.add_argument("--orders", required=True, help="this strategy's order journal (created; must not exist)")
    ap.add_argument("--source", type=int, default=0, help="our id: requests carry it, answers come back to it")
    ap.add_argument("--cash", type=float, default=0.0, help="starting cash (as the replay's --cash)")
    ap.add_argument("--wait", choices=["busy", "backoff"], default="backoff")
    ap.add_argument("--force", action="store_true", help="replace an existing order journal")
    args = ap.parse_args(argv)
    try:
        strategy = load_strategy(args.strategy)
        ctx = run_strategy(strategy, args.output, args.orders, source=args.source, cash=args.cash, wait=args.wait,
                           force=args.force)
    except KftoolsError as e:
        print(f"kftools: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps({"orders_sent": ctx.orders_sent, "positions": ctx.positions, "cash": ctx.cash,
                      "fees": ctx.fees, "strategy_summary": getattr(strategy, "summary", None)}, default=repr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
