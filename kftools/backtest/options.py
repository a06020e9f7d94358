"""The backtest's option syntax: latencies (``200us``, ``1.5ms``, ``0``) and fees (``maker=0.5bp,taker=2bp,order=0.01``)."""

from __future__ import annotations

import math
import re

from ..errors import UsageError
from .exchange import ExchangeConfig, Fees
from .exchange import fill_model as parse_fill_model

MAX_LATENCY_NS = 86_400 * 1_000_000_000  # a day: larger is a typo, and would overflow recording times
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|µs|ms|s)?\s*$")


def parse_latency(text: str | int, option: str = "--latency") -> int:
    """``200us`` -> 200000 (ns). A bare number is nanoseconds."""
    if isinstance(text, int):
        ns = text
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise UsageError(f"{option} {text!r}: give a duration such as 0, 500ns, 200us, 1.5ms or 1s")
        x = float(m.group(1)) * _UNITS[m.group(2) or "ns"]
        if not x <= MAX_LATENCY_NS:
            raise UsageError(f"{option} {text!r}: at most {MAX_LATENCY_NS // 1_000_000_000:,} s of recording time")
        ns = round(x)
    if ns < 0:
        raise UsageError(f"{option} {text!r}: must not be negative")
    if ns > MAX_LATENCY_NS:
        raise UsageError(f"{option} {text!r}: at most {MAX_LATENCY_NS // 1_000_000_000:,} s of recording time")
    return int(ns)


def parse_fees(text: str | None) -> Fees:
    """``maker=0.5bp,taker=2bp,order=0.01``: rates in basis points of the notional (negative maker = rebate),
    ``order`` a fixed fee per order in cash units, charged with its first fill."""
    if not text:
        return Fees()
    vals = {"maker": 0.0, "taker": 0.0, "order": 0.0}
    for part in text.split(","):
        key, eq, val = part.partition("=")
        key = key.strip().lower()
        val = val.strip()
        if not eq or key not in vals:
            raise UsageError(f"--fees {text!r}: expected maker=<bp>,taker=<bp>,order=<cash>, not {part!r}")
        unit_bp = val.lower().endswith(("bp", "bps"))
        num = val.lower().removesuffix("bps").removesuffix("bp") if unit_bp else val
        if key == "order" and unit_bp:
            raise UsageError(f"--fees {text!r}: order= is a fixed amount per order, not basis points")
        try:
            x = float(num)
        except ValueError:
            raise UsageError(f"--fees {text!r}: {val!r} is not a number") from None
        if not math.isfinite(x):
            raise UsageError(f"--fees {text!r}: {val!r} is not a finite number")
        vals[key] = x
    return Fees(maker_bps=vals["maker"], taker_bps=vals["taker"], per_order=vals["order"])


def exchange_config(
    fill_model: str = "touch", latency: str | int = 0, response_latency: str | int = 0, fees: str | None = None,
    cap_volume: bool = False, cash: float = 0.0,
) -> ExchangeConfig:
    """An :class:`ExchangeConfig` from the command line's option values (checked: UsageError when wrong)."""
    model = fill_model.strip().lower()
    try:
        parse_fill_model(model)
    except ValueError as e:
        raise UsageError(f"--fill-model: {e}") from None
    if not math.isfinite(cash):
        raise UsageError(f"--cash {cash!r}: must be a finite number")
    return ExchangeConfig(
        fill_model=model, latency_ns=parse_latency(latency), response_latency_ns=parse_latency(response_latency,
        "--response-latency"), fees=parse_fees(fees), cap_volume=cap_volume, cash=float(cash),
    )
