"""Strategies of a replay or a backtest: loaded from ``path.py[:Class]``, built with parameters, summarised."""

from __future__ import annotations

import importlib.util
import inspect
import os
import traceback

from ..errors import StrategyError, UsageError


def load_strategy(spec: str, params: dict | None = None):
    """Instantiate ``path.py[:Class]`` with ``params`` as keyword arguments; without a class name, the module's
    one strategy class."""
    path, _, cls_name = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such strategy file")
    mod_name = "kftools_strategy_" + os.path.splitext(os.path.basename(path))[0]
    try:
        sp = importlib.util.spec_from_file_location(mod_name, path)
        if sp is None or sp.loader is None:
            raise ImportError("not a Python source file")
        mod = importlib.util.module_from_spec(sp)
        sp.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001 - user code: report where it failed
        raise StrategyError(f"{path}: cannot load strategy: {_where(e)}") from None
    if cls_name:
        cls = getattr(mod, cls_name, None)
        if cls is None:
            raise UsageError(f"{path}: no class {cls_name!r}")
    else:
        found = [v for v in vars(mod).values() if isinstance(v, type) and v.__module__ == mod_name
                 and any(hasattr(v, m) for m in ("on_start", "on_ticker", "on_order", "on_trade", "on_frame"))]
        if len(found) != 1:
            names = ", ".join(c.__name__ for c in found) or "none"
            raise UsageError(f"{path}: name the strategy class as {path}:Class (strategy classes found: {names})")
        cls = found[0]
    return make_strategy(cls, params, path)


def make_strategy(cls: type, params: dict | None, path: str = ""):
    """``cls(**params)``; a parameter the class does not take, or a constructor that raises, is one line."""
    where_ = path or cls.__name__
    try:
        inspect.signature(cls).bind(**(params or {}))
    except TypeError as e:
        raise UsageError(f"{where_}: {cls.__name__} does not take these parameters ({e})") from None
    except ValueError:
        pass  # no signature to check (a builtin): let the call say
    try:
        return cls(**(params or {}))
    except Exception as e:  # noqa: BLE001
        raise StrategyError(f"{where_}: {cls.__name__}() failed: {_where(e)}") from None


def _where(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    loc = f"{os.path.basename(tb[-1].filename)}:{tb[-1].lineno} in {tb[-1].name}: " if tb else ""
    return f"{loc}{type(e).__name__}: {e}"



def summary_of(strategy: object) -> object:
    """A strategy's ``summary``: an attribute, or a method called once the replay ended."""
    summary = getattr(strategy, "summary", None)
    if callable(summary):
        try:
            summary = summary()
        except Exception as e:  # noqa: BLE001 - a strategy's bug, reported as one line
            raise StrategyError(f"strategy {type(strategy).__name__}.summary failed: {_where(e)}") from None
    return summary

