"""The live view on a journal, headless: when its first rows show, when every frame is counted (the bottom),
and a jump to the top and back to the bottom. Run by ``kftools bench size`` as its own process (its time and
peak memory are measured from outside); prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _probe(path: str, frames: int) -> dict:
    from kftools.journal.registry import DEFAULT_REGISTRY
    from kftools.tui.app import TailApp
    from kftools.tui.widgets import FrameTable

    t0 = time.perf_counter()
    app = TailApp(path, DEFAULT_REGISTRY)
    out: dict = {}
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(FrameTable)

        async def until(cond) -> float:
            while not cond():
                await pilot.pause(0.001)
            return round((time.perf_counter() - t0) * 1e3, 1)

        out["first_rows_ms"] = await until(lambda: table.count > 0 and app.reader is not None)
        out["all_counted_ms"] = await until(lambda: app.caught_up and app.index.count == frames)
        rows = table.visible_rows
        t = time.perf_counter()
        await pilot.press("home")
        await until(lambda: table.top == 0)
        assert len(app._fetch(0, rows)) == min(rows, frames)  # what the screen draws
        out["jump_top_ms"] = round((time.perf_counter() - t) * 1e3, 1)
        t = time.perf_counter()
        await pilot.press("end")
        await until(lambda: table.following)
        assert len(app._fetch(max(0, frames - rows), frames)) == min(rows, frames)
        out["jump_bottom_ms"] = round((time.perf_counter() - t) * 1e3, 1)
    return out


def main() -> None:
    path, frames = sys.argv[1], int(sys.argv[2])
    print(json.dumps(asyncio.run(_probe(path, frames))))


if __name__ == "__main__":
    main()
