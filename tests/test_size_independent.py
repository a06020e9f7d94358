"""Commands whose cost does not grow with the journal: sealed pages are taken from the summaries the writer
records when it seals them (``<journal>.summaries``), recomputed when missing or stale; the answers are those
of the full walk, and the writer refuses exactly what it refused before."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import pytest
from kftest import run_cli

from kftools import Reader, Writer
from kftools.errors import CorruptJournal
from kftools.journal.format import PAGE_HEADER_SIZE, page_path
from kftools.journal.summaries import read_summaries, summaries_path

PAGE = 4096
FRAMES = 400  # about 9 pages of 4 KiB


def _write(path: str, frames: int = FRAMES, start: int = 0) -> None:
    with Writer(path, page_size=PAGE, append=start > 0) as w:
        for i in range(start, start + frames):
            if i % 7 == 3:
                w.write_order("MSFT", i, 0, price=1.0 + i, quantity=2.0, gen_time=10**18 + i)
            else:
                w.write_ticker("AAPL" if i % 2 else "NVDA", float(i), gen_time=10**18 + i)


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("sized") / "j.dat")
    _write(path)
    return path


def _copy(src: str, d) -> str:
    """Every file of the journal, summaries too (a copy's pages are new files: their summaries are stale)."""
    for name in os.listdir(os.path.dirname(src)):
        shutil.copyfile(os.path.join(os.path.dirname(src), name), os.path.join(d, name))
    return os.path.join(d, os.path.basename(src))


def _pages(path: str) -> int:
    with Reader(path) as r:
        return r.page_count()


def _answers(path: str) -> dict:
    """What each size-independent command says, exit codes included."""
    out = {}
    for name, args in {
        "info": ["info", "--json", path],
        "cat": ["cat", "-n", "5", "--format", "jsonl", path],
        "cat_orders": ["cat", "-n", "70", "-t", "Order", "--format", "jsonl", path],
        "verify_quick": ["verify", "--quick", "--json", path],
        "monitor": ["monitor", "--once", "--json", path],
    }.items():
        res = run_cli(*args)
        text, err = res.stdout.replace(path, "J"), res.stderr.replace(path, "J")
        if name in ("info", "verify_quick", "monitor"):
            d = json.loads(text)
            for volatile in ("readers",):
                d.pop(volatile, None)
            if name == "monitor":
                j = d["journals"][0]
                d = {k: j[k] for k in ("frames_total", "bytes_total", "newest_gen_time", "damage", "pages")}
            text = d
        out[name] = (res.returncode, text, err)
    return out


def test_the_writer_records_a_summary_for_each_page_it_seals(journal):
    sums = read_summaries(journal)
    n = _pages(journal)
    assert n > 5 and sorted(sums) == list(range(n - 1))  # every sealed page; never the last (a writer resumes it)
    with Reader(journal) as r:
        for i, s in sums.items():
            batches = list(r.batches(start=(i, PAGE_HEADER_SIZE), until=(i, r.page(i).cursor)))
            types = [int(t) for b in batches for t in b.headers["msg_type"]]
            gens = [int(g) for b in batches for g in b.headers["gen_time"]]
            assert s.frames == len(types) and s.cursor == r.page(i).cursor
            assert s.by_type == {t: types.count(t) for t in sorted(set(types))}
            assert (s.min_time, s.max_time, s.last_time) == (min(gens), max(gens), gens[-1])


def test_commands_answer_the_same_with_and_without_summaries(journal, tmp_path):
    with_sums = _answers(journal)
    assert with_sums["info"][0] == 0 and with_sums["info"][1]["frames"] == FRAMES
    assert len(with_sums["cat"][1].splitlines()) == 5
    assert len(with_sums["cat_orders"][1].splitlines()) == 57  # more than the last page holds: pages re-read
    bare = _copy(journal, tmp_path)
    os.unlink(summaries_path(bare))
    assert _answers(bare) == with_sums
    # and the full walks agree
    full = json.loads(run_cli("info", "--count", "--json", journal).stdout.replace(journal, "J"))
    full.pop("readers")
    assert full == with_sums["info"][1]
    assert json.loads(run_cli("verify", "--json", journal).stdout)["frames"] == FRAMES


def test_readers_never_write_summaries_and_a_resuming_writer_records_the_missing_ones(journal, tmp_path):
    path = _copy(journal, tmp_path)
    os.unlink(summaries_path(path))
    for args in (["info", path], ["cat", "-n", "3", path], ["verify", "--quick", path], ["monitor", "--once", path]):
        assert run_cli(*args).returncode == 0
    assert not os.path.exists(summaries_path(path))
    with Writer(path, append=True):
        pass
    assert sorted(read_summaries(path)) == list(range(_pages(path) - 1))


def test_sealed_pages_with_a_summary_are_not_walked(journal, monkeypatch):
    from kftools import info
    from kftools.journal import walk

    scanned = set()
    real = walk.scan_page

    def counting(page, *a, **k):
        scanned.add(page.index)
        return real(page, *a, **k)

    monkeypatch.setattr(walk, "scan_page", counting)
    got = info.journal_info(journal)
    assert got.frames == FRAMES and scanned == {_pages(journal) - 1}  # the writer's page only
    scanned.clear()
    with Reader(journal) as r:
        assert len(r.last(5)) == 5
    assert scanned == {_pages(journal) - 1}


def _zero_frame_header(path: str, page: int) -> None:
    """A power loss or a stray write: a frame header in the middle of a sealed page reads zero."""
    with Reader(path) as r:
        offs = [int(o) for b in r.batches(start=(page, PAGE_HEADER_SIZE), until=(page, r.page(page).cursor))
                for o in b.offsets]
    with open(page_path(path, page), "r+b") as fh:
        fh.seek(offs[len(offs) // 2])
        fh.write(bytes(32))


def test_a_page_changed_after_its_summary_is_walked_again_and_every_refusal_holds(journal, tmp_path):
    path = _copy(journal, tmp_path)
    with Writer(path, append=True):
        pass  # the copy's summaries recorded afresh: they hold until a page changes
    assert sorted(read_summaries(path)) == list(range(_pages(path) - 1))
    _zero_frame_header(path, 2)
    v = run_cli("verify", "--json", path)
    assert v.returncode == 3
    frames = json.loads(v.stdout)["frames"]
    info = run_cli("info", "--json", path)
    assert info.returncode == 3 and json.loads(info.stdout)["frames"] == frames and "page 2" in info.stderr
    assert run_cli("verify", "--quick", path).returncode == 3
    cat = run_cli("cat", "-n", "5", "--format", "jsonl", path)
    assert cat.returncode == 3 and "page 2" in cat.stderr
    mon = json.loads(run_cli("monitor", "--once", "--json", path).stdout)
    assert "page 2" in mon["journals"][0]["damage"]
    with pytest.raises(CorruptJournal, match="page 2"):
        Writer(path, append=True)


def test_a_lost_page_is_refused_with_summaries_of_the_others(journal, tmp_path):
    path = _copy(journal, tmp_path)
    os.unlink(page_path(path, 3))  # a gap: page 3 missing before later pages
    with pytest.raises(CorruptJournal, match="missing"):
        Writer(path, append=True)
    assert run_cli("info", path).returncode == 3
    assert run_cli("cat", "-n", "5", path).returncode == 3


def test_a_reader_whose_layout_is_longer_walks_the_page_again(tmp_path):
    """A summary proves frames valid for the layouts they were written with; a schema that declares a type
    longer makes those frames damage, found exactly where the full walk finds it."""
    path = str(tmp_path / "u.dat")
    with Writer(path, page_size=PAGE) as w:
        for i in range(200):
            w.write(100, i.to_bytes(8, "little"), gen_time=10**18 + i)
    assert read_summaries(path)
    schema = tmp_path / "s.toml"
    schema.write_text('[[types]]\nid = 100\nname = "Wide"\nfields = [{ name = "a", type = "u64" }, '
                      '{ name = "b", type = "u64" }]\n')
    full = run_cli("verify", "--json", path, "--schema", schema)
    assert full.returncode == 3
    info = run_cli("info", "--json", path, "--schema", schema)
    assert info.returncode == 3 and json.loads(info.stdout)["frames"] == json.loads(full.stdout)["frames"] == 0


def test_the_live_view_indexes_summarised_pages_without_walking_them(journal, monkeypatch):
    from kftools.journal.registry import DEFAULT_REGISTRY
    from kftools.tui import watcher
    from kftools.tui.app import TailApp

    monkeypatch.setattr(watcher, "_WALK_WHOLE", 0)  # as on a journal of millions of frames
    with Reader(journal) as r:
        want = [(f.page_index, f.offset) for f in r]

    async def go():
        app = TailApp(journal, DEFAULT_REGISTRY)
        async with app.run_test(size=(120, 30)) as pilot:
            while not (app.caught_up and app.reader is not None):
                await pilot.pause(0.02)
            idx = app.index
            assert idx.count == idx.total == FRAMES
            assert len(idx.pages) == _pages(journal) and idx._live_page == _pages(journal) - 1
            got = [(f.page_index, f.offset) for f in idx.frames(app.reader, 0, FRAMES)]
            assert got == want
            await pilot.press("home")  # the first page is read on demand
            assert [f.offset for f in app._fetch(0, 3)] == [o for _p, o in want[:3]]

    asyncio.run(go())
