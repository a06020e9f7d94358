"""Optional packages by extra: ``pip install kftools`` is the journal core and the reading commands; the rest comes
with ``kftools[backtest]``, ``[monitor]``, ``[archive]``, ``[cluster]`` (or ``[all]``). A command checks its extra
before it starts (nothing done, one line naming the extra to install); the imports stay where they are used."""

from __future__ import annotations

import importlib.util

from .errors import MissingExtra, needs_extra

#: the packages each extra installs (pyproject.toml's optional-dependencies), by import name
EXTRAS: dict[str, tuple[str, ...]] = {
    "backtest": ("matplotlib", "plotly"),
    "monitor": ("prometheus_client",),
    "archive": ("zstandard",),
    "cluster": ("distributed",),
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, not imported: the check costs no import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` naming ``extra`` when one of its packages is missing (``what``: the command)."""
    if not all(installed(m) for m in EXTRAS[extra]):
        raise needs_extra(what, extra)


__all__ = ["EXTRAS", "MissingExtra", "installed", "require"]
