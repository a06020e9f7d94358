"""The live view on a journal, headless, timed as a user sees it: each step runs until the table has drawn the
rows it should (not until the index knows them). Run by ``kftools bench size`` as its own process (its time and
peak memory are measured from outside); prints one JSON line.

- ``first_rows_ms``: from the start until the first rows are drawn;
- ``all_counted_ms``: until the last frames of the journal are drawn, every frame counted (the bottom), and
  ``all_counted_cpu_ms`` the CPU time (all threads) the process spent until then;
- ``end_at_first_rows_ms``: End pressed as soon as the first rows show, until the last frames are drawn;
- ``jump_top_ms`` / ``jump_bottom_ms``: Home, then End, once the screen has settled: each keypress until its
  rows are drawn (and the ``_cpu_ms`` the process spent meanwhile).

The bottom is checked, not assumed: the last row drawn is the journal's last frame (it ends at the last page's
cursor) and its row number is the frame count.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _probe(path: str, frames: int) -> dict:
    from textual import events

    from kftools.journal.reader import Reader
    from kftools.journal.registry import DEFAULT_REGISTRY
    from kftools.tui.app import TailApp
    from kftools.tui.widgets import FrameTable

    with Reader(path) as r:
        last_page, cursor = r.end_position()
    t0, c0 = time.perf_counter(), time.process_time()
    app = TailApp(path, DEFAULT_REGISTRY)
    out: dict = {}
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(FrameTable)

        async def until(cond, since: float) -> float:
            while not cond():
                await asyncio.sleep(0.001)  # not pilot.pause: it waits for the screen to settle
            return round((time.perf_counter() - since) * 1e3, 1)

        def press(key: str) -> float:
            # as a terminal delivers it: the pilot's press() waits for the whole process to idle first
            t = time.perf_counter()
            app.post_message(events.Key(key, None))
            return t

        def top_drawn() -> bool:
            top, shown = table.drawn
            return top == 0 and len(shown) == min(table.visible_rows, frames)

        def bottom_drawn() -> bool:
            top, shown = table.drawn
            rows = min(table.visible_rows, frames)
            if len(shown) != rows or top + rows != frames or table.count != frames:
                return False
            f = shown[-1]
            return (f.page_index, f.offset + f.page.frame_header_size + f.length) == (last_page, cursor)

        out["first_rows_ms"] = await until(lambda: bool(table.drawn[1]), t0)
        out["end_at_first_rows_ms"] = await until(bottom_drawn, press("end"))
        out["all_counted_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        out["all_counted_cpu_ms"] = round((time.process_time() - c0) * 1e3, 1)  # all threads: steadier under load
        # the jumps from a settled screen (the follower caught up, the sparklines mounted), not the first frames
        await until(lambda: app.caught_up, t0)
        await pilot.pause()
        # Home pauses following and End resumes it: the key was handled, and then its rows drawn
        for name, key, drawn in (("jump_top", "home", lambda: not table.following and top_drawn()),
                                 ("jump_bottom", "end", lambda: table.following and bottom_drawn())):
            c = time.process_time()
            out[f"{name}_ms"] = await until(drawn, press(key))
            out[f"{name}_cpu_ms"] = round((time.process_time() - c) * 1e3, 1)
    return out


def main() -> None:
    path, frames = sys.argv[1], int(sys.argv[2])
    print(json.dumps(asyncio.run(_probe(path, frames))))


if __name__ == "__main__":
    main()
