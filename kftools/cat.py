"""``kftools cat``: print frames as text, JSON lines or CSV; optionally follow.

Several journals (or a folder) print as one timeline merged by ``gen_time``,
each line naming its journal.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import UsageError
from .journal.merge import DEFAULT_HOLD, MergedReader, open_journals
from .journal.positions import check_reader_name
from .journal.reader import Damage, Frame
from .journal.registry import TypeRegistry
from .linefmt import LineRenderer
from .render import CsvWriter, csv_columns, json_line, text_line
from .selection import Selection


@dataclass
class CatResult:
    """What ``cat`` printed: ``frames`` lines; ``damage`` where the journal was damaged, if it was;
    ``unmatched`` says in words what was asked for when a filtered selection printed nothing."""

    frames: int = 0
    damage: Damage | None = None
    unmatched: str | None = None
    interrupted: bool = False  # a follow stopped by ``stop`` (Ctrl-C, SIGTERM)


def cat(
    paths: str | Sequence[str],
    *,
    registry: TypeRegistry,
    out=None,
    fmt: str = "text",
    types=None,
    symbols=None,
    start: str | None = None,
    end: str | None = None,
    last: int | None = None,
    follow: bool = False,
    wait: str = "backoff",
    stop: threading.Event | None = None,
    on_wait: Callable[[str], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
    hold: float = DEFAULT_HOLD,
    tz: dt.tzinfo | None = None,
    name: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> CatResult:
    """Write the selected frames to ``out`` (text times in ``tz``, default UTC); several journals merged by time,
    each line naming its journal (``hold``: see ``MergedReader.follow_batches``).

    ``name`` (following one journal) publishes the follower's position in ``<journal>.readers``; ``progress``
    is called with the frames printed so far (every 65,536 frames, and after each batch when following).
    """
    if name is not None and not follow:
        raise UsageError("--name needs --follow (it publishes a follower's position)")
    if name is not None:
        check_reader_name(name)  # before any frame is printed
    out = out or sys.stdout
    res = CatResult()
    if isinstance(paths, str):
        paths = [paths]
    reader = open_journals(paths, registry=registry, wait=follow, stop=stop, on_wait=on_wait)
    if reader is None:
        return res
    many = isinstance(reader, MergedReader)
    if isinstance(reader, MergedReader) and on_skip is not None:
        for why in reader.skipped:
            on_skip(why)
    with reader:
        registry = reader.registry  # a Kungfu journal brings its own types
        sel = Selection.parse(reader, registry, types, symbols, start, end, tz=tz)
        line: Callable[[Frame], str]
        columns = None
        if fmt == "jsonl":
            line = functools.partial(json_line, journal=many)
        elif fmt == "csv":
            columns = csv_columns(registry, sel.types, journal=many)
            line = CsvWriter(out, columns, journal=many).line
        else:
            line = functools.partial(text_line, tz=tz, journal=many)
        # whole batches rendered at once (C when built): the same bytes as ``line`` gives frame by frame
        render = LineRenderer(fmt, journal=many, columns=columns, tz=tz).batch
        emit = _byte_writer(out)
        write = out.write
        if not follow:
            if last is not None:
                for f in reader.last(last, **sel.filters()):
                    write(line(f) + "\n")
                    res.frames += 1
            else:
                for batch in reader.batches(**sel.filters()):
                    emit(render(batch))
                    before, res.frames = res.frames, res.frames + len(batch)
                    if progress is not None and before >> 16 != res.frames >> 16:
                        progress(res.frames, None)
            res.damage = reader.damage
            if res.frames == 0 and not sel.trivial and last != 0:
                res.unmatched = sel.describe(registry, tz)
            return res
        pos = reader.end_position() if last is not None else None
        if last is not None:
            for f in reader.last(last, until=pos, **sel.filters()):  # type: ignore[arg-type]
                write(line(f) + "\n")
                res.frames += 1
            if reader.damage is not None:
                res.damage = reader.damage
                if not many:
                    return res  # never follow past damage
                # several: the others go on (as when following from the beginning); a damaged one is followed
                # from its damage, where it drops out again, never from past it
                assert isinstance(reader, MergedReader) and isinstance(pos, list)
                pos = [(r.damage.page, r.damage.offset) if r.damage is not None else p
                       for r, p in zip(reader.readers, pos, strict=True)]
        extra = {"hold": hold} if many else {"name": name}
        if many and name is not None:
            raise UsageError("--name publishes the position of a follower of one journal, not of several")
        for batch in reader.follow_batches(pos or "beginning", wait, stop=stop, **sel.filters(), **extra):  # type: ignore[arg-type]
            if not len(batch):
                out.flush()  # caught up: show what we have
                continue
            emit(render(batch))
            res.frames += len(batch)
            if progress is not None:
                progress(res.frames, None)
            if stop is not None and stop.is_set():  # Ctrl-C while printing what was there: stop now, not at the end
                break
        res.interrupted = stop is not None and stop.is_set()
        res.damage = res.damage or reader.damage
        return res


def _byte_writer(out) -> Callable[[bytes], None]:
    """Write UTF-8 lines to ``out``: to its byte buffer when it is a UTF-8 text stream (flushing the text
    layer first, so nothing written through it comes later), else decoded."""
    buffer = getattr(out, "buffer", None)
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
    if buffer is None or encoding != "utf8":
        return lambda data: out.write(data.decode("utf-8"))

    def emit(data: bytes) -> None:
        out.flush()
        buffer.write(data)

    return emit
