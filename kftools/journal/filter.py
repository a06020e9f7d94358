"""The one frame filter (types, symbols, gen_time range), applied to a whole batch with numpy.

:func:`frame_filter` turns what a user gives (type names or ids, comma lists,
ns or text times such as ``+10s``) into a :class:`FrameFilter`; ``Reader``,
``MergedReader`` and through them ``cat``, the tail, replay and export all
filter with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..errors import UnknownType, UsageError
from .frames import FrameBatch
from .registry import TypeRegistry
from .times import TIME_OF_DAY, parse_time


class FrameFilter:
    """Keep frames whose gen_time is in ``[start_time, end_time]``, whose type id is in ``types`` and whose
    symbol field is in ``symbols`` (None: no condition; ``types=()`` keeps no frame: a journal whose generation
    has none of the types asked for, see :func:`journal_types`)."""

    __slots__ = ("start_time", "end_time", "types", "symbols", "trivial", "_types", "_symbols")

    def __init__(
        self, start_time: int | None = None, end_time: int | None = None, types: Iterable[int] | None = None,
        symbols: Iterable[str | bytes] | None = None,
    ):
        self.start_time = start_time
        self.end_time = end_time
        #: the type ids and symbols kept, sorted (None: any)
        self.types: list[int] | None = sorted(set(int(t) for t in types)) if types or types == () else None
        self.symbols: list | None = sorted(set(symbols), key=_as_bytes) if symbols else None
        self._types = np.array(self.types, dtype=np.uint32) if self.types is not None else None
        self._symbols = np.array([_as_bytes(s) for s in self.symbols]) if self.symbols else None
        self.trivial = start_time is None and end_time is None and self.types is None and self.symbols is None

    def mask(self, b: FrameBatch) -> np.ndarray | None:
        """The frames of ``b`` to keep, or None when every frame is kept."""
        if self.trivial or not len(b):
            return None
        h = b.headers
        keep = np.ones(len(b), dtype=bool)
        if self.start_time is not None:
            keep &= h["gen_time"] >= self.start_time
        if self.end_time is not None:
            keep &= h["gen_time"] <= self.end_time
        if self._types is not None:
            keep &= np.isin(h["msg_type"], self._types)
        if self._symbols is not None and keep.any():
            keep[keep] = np.isin(b.symbols(keep), self._symbols)
        return keep

    def __call__(self, b: FrameBatch) -> FrameBatch:
        """``b`` with only the frames to keep."""
        keep = self.mask(b)
        return b if keep is None or keep.all() else b.select(keep)


def journal_types(registries: Sequence[TypeRegistry], types) -> list[tuple[int, ...]] | None:
    """``types`` (names or ids, comma lists, as :func:`frame_filter` takes them) resolved in each journal's own
    registry, for journals read together: Kungfu generations number their types differently, so ``Trade`` is
    204 in a Kungfu 2.4 journal and 203 in a later one. An id is the same id in every journal; a name one
    journal's generation does not know selects nothing of that journal (``()``); a name no journal knows is the
    error :meth:`TypeRegistry.resolve` raises for the first. None: no type condition."""
    if types is None:
        return None
    if isinstance(types, str | int):
        types = [types]
    parts: list[str | int] = []
    for t in types:
        if isinstance(t, bool) or not isinstance(t, str | int | np.integer):
            raise UsageError(f"types: {t!r} is not a type name or id")
        if isinstance(t, str):
            parts.extend(p.strip() for p in t.split(",") if p.strip())
        else:
            parts.append(int(t))
    if not parts:
        return None
    per: list[list[int]] = [[] for _ in registries]
    for part in parts:
        errors: list[UnknownType] = []
        for ids, reg in zip(per, registries, strict=True):
            try:
                ids.append(reg.resolve(part))
            except UnknownType as e:
                errors.append(e)
        if len(errors) == len(registries):
            raise errors[0]
    return [tuple(ids) for ids in per]


def _as_bytes(symbol: str | bytes) -> bytes:
    return symbol.encode() if isinstance(symbol, str) else symbol


def frame_filter(
    registry: TypeRegistry, start_time=None, end_time=None, types=None, symbols=None, *,
    first_time: Callable[[], int | None] | None = None, last_time: Callable[[], int | None] | None = None,
    tz: dt.tzinfo | None = None,
) -> FrameFilter:
    """A :class:`FrameFilter` from filters as the CLI takes them, checked: ``types`` names or ids (or a comma
    list), ``symbols`` a list or a comma list, times as ns since the epoch or text (ISO-8601 in ``tz``,
    ``+10s`` after the first frame, ``-5s`` before the last, ``13:03:05`` on the first frame's day; the journal's
    first and last gen_time come from ``first_time`` / ``last_time``, asked only when a time needs them).
    Raises UsageError / UnknownType on what it cannot take; ``types=()`` keeps no frame (as
    :func:`journal_types` says of a journal that knows none of the types asked for)."""
    nothing = isinstance(types, tuple) and not types
    if isinstance(types, str | int):
        types = [types]
    tids: list[int] | None = None
    if types is not None:
        tids = []
        for t in types:
            if isinstance(t, bool) or not isinstance(t, str | int | np.integer):
                raise UsageError(f"types: {t!r} is not a type name or id")
            for part in str(t).split(",") if isinstance(t, str) else [t]:
                if str(part).strip():
                    tids.append(registry.resolve(part.strip() if isinstance(part, str) else int(part)))
    if isinstance(symbols, str | bytes):
        symbols = [symbols]
    syms: list | None = None
    if symbols is not None:
        syms = []
        for sym in symbols:
            if not isinstance(sym, str | bytes):
                raise UsageError(f"symbols: {sym!r} is not a symbol (str)")
            parts = sym.split(",") if isinstance(sym, str) else [sym]
            syms.extend(p.strip() if isinstance(p, str) else p for p in parts if p.strip())
    times = _JournalTimes(first_time, last_time)
    return FrameFilter(filter_time("start_time", start_time, times, tz), filter_time("end_time", end_time, times, tz),
                       () if nothing else tids, syms)


class _JournalTimes:
    """The journal's first and last gen_time, each asked for once and only when a time needs it."""

    def __init__(self, first: Callable[[], int | None] | None, last: Callable[[], int | None] | None):
        self._get = {"first": first, "last": last}
        self._got: dict[str, int | None] = {}

    def __call__(self, which: str) -> int | None:
        if which not in self._got:
            get = self._get[which]
            self._got[which] = get() if get is not None else None
        return self._got[which]


def filter_time(name: str, value, times: _JournalTimes | None = None, tz: dt.tzinfo | None = None) -> int | None:
    """A filter time as ns: int ns, or text as the CLI takes it (see :func:`frame_filter`)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str | np.integer):
        raise UsageError(f"{name} must be ns since the epoch or a time string, not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        origin = last = None
        if times is not None and (text.startswith("+") or TIME_OF_DAY.match(text)):
            origin = times("first")
        if times is not None and text.startswith("-"):
            last = times("last")
        return parse_time(value, origin, last=last, tz=tz)
    return int(value)


__all__ = ["FrameFilter", "filter_time", "frame_filter", "journal_types"]
