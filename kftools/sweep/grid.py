"""The runs of a sweep: every combination of strategy parameters, fill models, latencies and recordings.

A run is a :class:`RunSpec` (named fields, hashable); its id is a digest of what it runs, so the same run
keeps its id (and its folder) when the grid grows, and a resumed sweep recognises what it already did.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from dataclasses import dataclass
from typing import Any

from ..backtest.options import parse_latency
from ..errors import UsageError

FILL_MODELS_DEFAULT = ("touch",)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One backtest of a sweep."""

    recording: str
    params: tuple[tuple[str, Any], ...]
    fill_model: str
    latency_ns: int

    @property
    def run_id(self) -> str:
        doc = json.dumps([self.recording, list(self.params), self.fill_model, self.latency_ns], sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:12]

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)


def parse_value(text: str) -> Any:
    """``5`` -> 5, ``0.01`` -> 0.01, ``true`` -> True, anything else the text itself."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """``["spread=0.01,0.02", "size=1,5"]`` -> ``{"spread": [0.01, 0.02], "size": [1, 5]}`` (order kept)."""
    grid: dict[str, list[Any]] = {}
    for item in items or ():
        name, eq, values = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise UsageError(f"--grid {item!r}: expected NAME=V1,V2,... (NAME a Python identifier)")
        vals = [parse_value(v) for v in values.split(",") if v.strip()]
        if not vals:
            raise UsageError(f"--grid {item!r}: no values")
        if name in grid:
            raise UsageError(f"--grid {name}: given twice")
        grid[name] = _unique(vals, f"--grid {name}")
    return grid


def read_grid_file(path: str) -> dict[str, Any]:
    """A TOML grid file: ``[grid]`` (NAME = [values]) and optional ``fill_model`` and ``latency`` lists."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such grid file") from None
    except (OSError, tomllib.TOMLDecodeError, RecursionError) as e:
        raise UsageError(f"{path}: not a readable TOML grid file: {e or 'nested too deeply'}") from None
    unknown = sorted(set(doc) - {"grid", "fill_model", "latency"})
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r} (expected [grid], fill_model, latency)")
    grid = doc.get("grid", {})
    if not isinstance(grid, dict):
        raise UsageError(f"{path}: [grid] must be a table of NAME = [values]")
    out: dict[str, Any] = {"grid": {}}
    for k, v in grid.items():
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise UsageError(f"{path}: grid {k}: no values")
        out["grid"][k] = _unique(vals, f"{path}: grid {k}")
    for key in ("fill_model", "latency"):
        if key in doc:
            v = doc[key]
            out[key] = [str(x) for x in (v if isinstance(v, list) else [v])]
    return out


def _unique(vals: list[Any], what: str) -> list[Any]:
    seen = []
    for v in vals:
        if v in seen:
            raise UsageError(f"{what}: value {v!r} given twice")
        seen.append(v)
    return seen


def expand(recordings: list[str], grid: dict[str, list[Any]], fill_models: list[str] | tuple[str, ...],
           latencies: list[str | int] | tuple[str | int, ...]) -> list[RunSpec]:
    """Every combination, in a fixed order: recording, fill model, latency, then the grid (last name fastest)."""
    from ..backtest.exchange import FILL_MODELS

    models = [m.strip().lower() for m in fill_models] or list(FILL_MODELS_DEFAULT)
    for m in models:
        if m not in FILL_MODELS:
            raise UsageError(f"--fill-model {m!r}: choose from {', '.join(FILL_MODELS)}")
    lats = [parse_latency(x) for x in latencies] or [0]
    names = list(grid)
    runs = []
    for rec in recordings:
        for m in _unique(models, "--fill-model"):
            for lat in _unique(lats, "--latency"):
                for combo in itertools.product(*(grid[n] for n in names)):
                    runs.append(RunSpec(os.fspath(rec), tuple(zip(names, combo, strict=True)), m, lat))
    return runs
