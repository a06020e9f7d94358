"""Pages and followers (issue 12 §1): what is not a page, gaps, writers that refuse, followers that notice.

Every case runs the real CLI or library on real files; timeouts only guard against a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from kftest import KFTOOLS, ROOT, run_cli

import kftools
from kftools.journal.format import FLAGS_OFFSET, PAGE_HEADER, page_path
from kftools.journal.page import U32


def _journal(path, pages=3, page_size=4096) -> int:
    """A closed journal of ``pages`` pages; returns its frame count."""
    n = 0
    with kftools.Writer(path, page_size=page_size) as w:
        while w.page_index < pages - 1 or n < 10:
            w.write_ticker("SEQ", float(n))
            n += 1
            if w.page_index == pages - 1 and n > 3 * (pages - 1) * page_size // 80:
                break
    return n


def _one_line_error(res, code):
    assert res.returncode == code, (res.returncode, res.stdout[-500:], res.stderr)
    assert "Traceback" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("kftools: error:")]
    assert len(errors) == 1, res.stderr


def _as_engine(path, pages):
    """Rewrite headers as an engine that knows only the first four fields (magic, index, flags zero)."""
    for i in range(pages):
        with open(page_path(path, i), "r+b") as fh:
            h = PAGE_HEADER.unpack(fh.read(PAGE_HEADER.size))
            h.update(magic=0, page_index=0, writer_pid=0, flags=0, reserved=b"")
            fh.seek(0)
            fh.write(PAGE_HEADER.struct.pack(*(h[n] for n in PAGE_HEADER.names)))


# -- what is not a page ---------------------------------------------------------------------
def test_a_fifo_first_page_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "j.dat"
    os.mkfifo(fifo)
    for args in (["cat", fifo], ["info", fifo], ["verify", fifo], ["cat", "-f", fifo], ["export", fifo, tmp_path / "o.parquet"],
                 ["replay", "--max", fifo, "-o", tmp_path / "r.dat"]):
        res = run_cli(*args, timeout=120)
        _one_line_error(res, 2)
        assert "not a regular file" in res.stderr
    with pytest.raises(kftools.OutputError):
        kftools.Writer(fifo)


def test_a_fifo_where_a_later_page_should_be_is_damage(tmp_path):
    j = str(tmp_path / "j.dat")
    _journal(j, pages=3)
    os.unlink(page_path(j, 1))
    os.mkfifo(page_path(j, 1))
    res = run_cli("verify", j, timeout=120)
    _one_line_error(res, 3)
    assert "not a regular file" in res.stderr
    assert run_cli("cat", j, timeout=120).returncode == 3


@pytest.mark.parametrize("engine", [False, True], ids=["kftools", "engine"])
def test_a_missing_middle_page_is_damage_in_both_formats(tmp_path, engine):
    j = str(tmp_path / "j.dat")
    total = _journal(j, pages=3)
    if engine:
        _as_engine(j, 3)
    assert run_cli("verify", j).returncode == 0
    with kftools.Reader(j) as r:
        assert r.count() == total
        first = sum(len(b) for b in r.batches() if b.page_index == 0)
    os.unlink(page_path(j, 1))
    res = run_cli("verify", j)
    _one_line_error(res, 3)
    assert page_path(j, 1) in res.stderr and "missing" in res.stderr
    with kftools.Reader(j) as r:
        assert r.count() == first and r.damage is not None
    assert run_cli("cat", j).returncode == 3 and run_cli("info", j).returncode == 3


def test_recover_in_place_sets_pages_past_a_gap_aside(tmp_path):
    j = str(tmp_path / "j.dat")
    _journal(j, pages=3)
    _as_engine(j, 3)  # engines set no SEALED flag: only the gap says page 2 does not follow page 0
    os.unlink(page_path(j, 1))
    assert run_cli("recover", "--in-place", j).returncode == 3  # it cut: what was lost is said, exit 3
    assert os.path.exists(page_path(j, 2) + ".damaged") and not os.path.exists(page_path(j, 2))
    assert run_cli("verify", j).returncode == 0
    with kftools.Writer(j, append=True) as w:  # clean again: a writer may append
        w.write_ticker("AFTER", 1.0)
    assert run_cli("verify", j).returncode == 0


# -- writers -----------------------------------------------------------------------------
def test_a_writer_refuses_a_journal_whose_later_pages_vanished(tmp_path):
    j = str(tmp_path / "j.dat")
    _journal(j, pages=3)
    os.unlink(page_path(j, 2))  # page 1 is sealed: its successor is lost
    assert run_cli("verify", j).returncode == 3
    before = {p: os.path.getsize(p) for p in (j, page_path(j, 1))}
    with pytest.raises(kftools.CorruptJournal, match="recover"):
        kftools.Writer(j, append=True)
    res = run_cli("simulate", j, "--frames", "10", "--append")
    _one_line_error(res, 3)
    assert "recover" in res.stderr
    assert not os.path.exists(page_path(j, 2))
    assert {p: os.path.getsize(p) for p in before} == before


def test_a_new_journal_never_adopts_stale_pages(tmp_path):
    old = str(tmp_path / "old.dat")
    _journal(old, pages=2)
    new = str(tmp_path / "new.dat")
    os.rename(page_path(old, 1), page_path(new, 1))  # a page left from another journal
    with pytest.raises(kftools.OutputError, match="another journal"):
        kftools.Writer(new)
    assert not os.path.exists(new)
    res = run_cli("simulate", new, "--frames", "10")
    _one_line_error(res, 2)
    assert not os.path.exists(new)
    src = str(tmp_path / "src.dat")
    _journal(src, pages=1)
    res = run_cli("replay", "--max", src, "-o", new)
    assert res.returncode == 2 and "another journal" in res.stderr and not os.path.exists(new)


# -- followers ---------------------------------------------------------------------------
def _follow_cli(j):
    p = subprocess.Popen([*KFTOOLS, "cat", "-f", "-F", "jsonl", j], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline()  # the event: it follows and printed the first frame
    return p


def test_a_follower_notices_the_journal_was_replaced(tmp_path):
    j = str(tmp_path / "j.dat")
    with kftools.Writer(j, page_size=4096) as w:
        w.write_ticker("OLD", 1.0)
    r = kftools.Reader(j)
    batches = r.follow_batches("beginning", "sleep")
    assert len(next(batches)) == 1
    p = _follow_cli(j)
    other = str(tmp_path / "other.dat")
    with kftools.Writer(other, page_size=4096) as w:
        w.write_ticker("NEW", 2.0)
    os.rename(other, j)  # replaced in one step: the path never goes missing between the two journals
    with pytest.raises(kftools.JournalChanged, match="replaced"):
        for _ in batches:
            pass
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "replaced" in err and "Traceback" not in err
    assert "NEW" not in out  # never spliced into the old journal's frames


def test_a_page_truncated_under_a_follower_is_one_line_not_a_signal(tmp_path):
    j = str(tmp_path / "j.dat")
    with kftools.Writer(j, page_size=1 << 20) as w:
        for i in range(100):
            w.write_ticker("T", float(i))
    p = _follow_cli(j)
    os.truncate(j, 0)  # `: > j.dat`, as copy-truncate log rotation does
    _out, err = p.communicate(timeout=120)
    assert p.returncode not in (0, -signal.SIGBUS, 128 + signal.SIGBUS), (p.returncode, err)
    lines = [ln for ln in err.splitlines() if ln.startswith("kftools: error:")]
    assert len(lines) == 1 and "truncated" in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_followers_stop_promptly_on_a_signal(tmp_path, sig):
    j = str(tmp_path / "j.dat")
    _journal(j, pages=1)
    for args in (["tail", "--plain", j], ["cat", "-f", j],
                 ["replay", "--follow", "--max", j, "-o", str(tmp_path / "r.dat")],
                 ["export", "--follow", j, str(tmp_path / "e.parquet")]):
        for out in ("r.dat", "e.parquet"):
            if os.path.exists(tmp_path / out):
                os.unlink(tmp_path / out)
        p = subprocess.Popen([*KFTOOLS, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if args[0] in ("tail", "cat"):
            assert p.stdout.readline()  # the event: it follows and printed a frame
        else:
            # the event: its output (or export's hidden staging file) is there, so it is relaying
            while not any(n.startswith(("r.dat", ".e.parquet", "e.parquet")) for n in os.listdir(tmp_path)):
                assert p.poll() is None, p.stderr.read()
        p.send_signal(sig)
        _out, err = p.communicate(timeout=60)
        assert p.returncode in (0, 130) and "Traceback" not in err, (args, p.returncode, err)


# -- unreadable pages --------------------------------------------------------------------
def _unreadable_journal(d):
    j = os.path.join(d, "j.dat")
    _journal(j, pages=3)
    pages = {page_path(j, i): open(page_path(j, i), "rb").read() for i in range(3)}
    return j, pages


def _unchanged(d, j, pages):
    # nothing moved aside (the writer's page summaries are beside the journal from the start)
    assert sorted(n for n in os.listdir(d) if not n.endswith(".summaries")) == ["j.dat", "j.dat.1", "j.dat.2"]
    for p, data in pages.items():
        assert open(p, "rb").read() == data
    with open(page_path(j, 0), "rb") as fh:
        assert U32.unpack_from(fh.read(64), FLAGS_OFFSET)[0] & 1  # still sealed: not cut


def test_an_unreadable_page_is_an_error_never_damage_and_recover_changes_nothing(tmp_path, monkeypatch):
    """As root every file is readable: the page's open fails with EACCES as it does for a user."""
    import kftools.journal.page as page_mod

    j, pages = _unreadable_journal(str(tmp_path))
    real_open = os.open

    def denied(path, flags, *a):
        if os.fspath(path) == page_path(j, 1):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *a)

    monkeypatch.setattr(page_mod.os, "open", denied)
    with pytest.raises(kftools.UnreadablePage, match="permission denied"):
        kftools.verify(j)
    with pytest.raises(kftools.UnreadablePage):
        kftools.recover(j, in_place=True)
    with pytest.raises(kftools.UnreadablePage):
        list(kftools.Reader(j))
    monkeypatch.undo()
    _unchanged(str(tmp_path), j, pages)


@pytest.mark.skipif(os.getuid() == 0, reason="root can read anything")
def test_an_unreadable_page_from_the_cli(tmp_path):
    j, pages = _unreadable_journal(str(tmp_path))
    os.chmod(page_path(j, 1), 0o000)
    for args in (["verify", j], ["cat", j], ["info", j], ["recover", "--in-place", j]):
        res = run_cli(*args)
        _one_line_error(res, 2)
        assert "permission denied" in res.stderr
    os.chmod(page_path(j, 1), 0o644)
    _unchanged(str(tmp_path), j, pages)
