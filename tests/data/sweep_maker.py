"""A market maker with constructor parameters, for tests/test_sweep.py and tests/test_report.py.

``KFTOOLS_TEST_GATE``: when set, a run with ``spread >= 0.02`` waits in ``on_start`` until that file exists,
so a test can hold runs in flight (interrupt a sweep, kill a worker) and let them go on an event.
"""

import os
import time

from kftools import Side


class Maker:
    def __init__(self, spread=0.01, size=1.0, limit=5.0):
        if spread <= 0:
            raise ValueError(f"spread must be positive, not {spread}")
        self.spread = spread
        self.size = size
        self.limit = limit

    def on_start(self, ctx):
        gate = os.environ.get("KFTOOLS_TEST_GATE")
        if gate and self.spread >= 0.02:
            deadline = time.monotonic() + 600  # only a guard against a test that never opens the gate
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.01)
        self.quotes = 0

    def on_ticker(self, ctx, frame):
        if ctx.open_orders(frame.symbol) or frame.bid_price <= 0:
            return
        pos = ctx.position(frame.symbol)
        mid = (frame.bid_price + frame.ask_price) / 2
        if pos < self.limit:
            ctx.send_order(frame.symbol, Side.BUY, round(mid - self.spread, 2), self.size)
        if pos > -self.limit:
            ctx.send_order(frame.symbol, Side.SELL, round(mid + self.spread, 2), self.size)
        self.quotes += 1
