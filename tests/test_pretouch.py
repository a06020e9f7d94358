"""Pretouching: memory faulted in ahead of use by a native thread, never changing what it holds."""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kftest import run_cli, wait_for

from kftools import Reader, Writer
from kftools.journal import pretouch
from kftools.journal.format import CURSOR_OFFSET
from kftools.replay import lateness, replay

pytestmark = pytest.mark.skipif(pretouch._pretouch is None, reason="the C extensions are not built")
CURSOR = struct.Struct("<I")


def _allocated(path: str) -> int:
    return os.stat(path).st_blocks * 512


def _tickers(w: Writer, n: int, start: int = 0) -> None:
    for k in range(start, start + n):
        w.write_ticker("AAPL", 100.0 + k, 99.5 + k, 100.5 + k, float(k), gen_time=1_000_000 + k)


@pytest.mark.parametrize("on", [True, False])
def test_a_pretouching_writer_keeps_its_page_faulted_in_ahead_of_the_cursor(tmp_path, on):
    path = str(tmp_path / "j.dat")
    with Writer(path, page_size=16 << 20, pretouch=on) as w:
        _tickers(w, 1000)
        cursor = w.position[1]
        if on:
            # the page file's blocks are allocated as the thread populates it for writing
            wait_for(lambda: _allocated(path) >= cursor + pretouch.AHEAD // 2, "the page to be populated ahead")
        else:
            assert _allocated(path) < pretouch.AHEAD  # the test can tell the difference
        _tickers(w, 1000, 1000)
    with Reader(path) as r:
        frames = list(r)
    assert [f.fields["last_price"] for f in frames] == [100.0 + k for k in range(2000)]
    with open(path, "rb") as fh:
        data = fh.read()
    end = w.position[1]
    assert not any(data[end:]), "populating must not change a byte past the cursor"
    assert run_cli("verify", path).returncode == 0


def test_a_pretouching_writer_rolls_pages_and_closes(tmp_path):
    path = str(tmp_path / "j.dat")
    with Writer(path, page_size=64 << 10, pretouch=True) as w:
        _tickers(w, 5000)  # about ten pages: each roll stops one page's thread and starts the next
        assert w.position[0] >= 5
    with Reader(path) as r:
        assert [f.gen_time for f in r] == [1_000_000 + k for k in range(5000)]
    assert run_cli("verify", path).returncode == 0


def _page(tmp_path, size: int) -> tuple[mmap.mmap, int]:
    fd = os.open(tmp_path / "m", os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, size)
    return mmap.mmap(fd, size), fd


@settings(max_examples=20, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=20_000), min_size=1, max_size=40), use_madvise=st.booleans())
def test_populating_while_the_owner_writes_never_changes_its_bytes(tmp_path_factory, chunks, use_madvise):
    # the fallback (a locked add of zero to each page) races the owner's stores to the same words
    mm, fd = _page(tmp_path_factory.mktemp("p"), 1 << 20)
    try:
        t = pretouch._pretouch.Pretoucher(mm, len(mm), 8192, cursor_offset=CURSOR_OFFSET, madvise=use_madvise)
        pos, want = 64, bytearray(1 << 20)
        for c in chunks:
            c = c[: len(mm) - pos]
            mm[pos : pos + len(c)] = c
            want[pos : pos + len(c)] = c
            pos += len(c)
            CURSOR.pack_into(mm, CURSOR_OFFSET, pos)
            CURSOR.pack_into(want, CURSOR_OFFSET, pos)
        wait_for(lambda: t.touched >= min(len(mm), pos + 8192) - 4096, "the thread to catch up")
        t.stop()
        assert t.error == 0
        assert mm[:] == bytes(want)
    finally:
        mm.close()
        os.close(fd)


def test_a_reading_pretoucher_stops_at_the_cursor(tmp_path):
    # on tmpfs (as engines place live journals) reading a hole would allocate it: nothing unwritten is touched
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)
    path = os.path.join(folder, f"kftools-test-{os.getpid()}.dat")
    with Writer(path, page_size=16 << 20) as w:
        _tickers(w, 20_000)
        cursor = w.position[1]
    try:
        with Reader(path) as r:
            page = r.pages.page(0)
            t = pretouch.pretoucher(page.mm, len(page.mm), 8 << 20, cursor_offset=CURSOR_OFFSET, write=False)
            t.advance(4096)
            wait_for(lambda: t.touched >= cursor - cursor % 4096, "the written part to be populated")
            t.stop()
            assert t.touched <= cursor + 4096 and t.error == 0
            assert _allocated(path) < cursor + 64 * 1024
            assert len(list(r)) == 20_000
    finally:
        os.unlink(path)


def test_a_mapping_cannot_be_closed_under_its_pretoucher(tmp_path):
    mm, fd = _page(tmp_path, 1 << 20)
    t = pretouch.pretoucher(mm, len(mm), 1 << 16, cursor_offset=CURSOR_OFFSET)
    with pytest.raises(BufferError):
        mm.close()  # unmapping under the thread would crash the process
    t.stop()
    t.stop()  # idempotent
    assert not t.running
    mm.close()
    os.close(fd)


def test_a_forked_child_lets_go_of_a_pretoucher_it_did_not_start(tmp_path):
    mm, fd = _page(tmp_path, 1 << 20)
    t = pretouch.pretoucher(mm, len(mm), 1 << 16, cursor_offset=CURSOR_OFFSET)
    pid = os.fork()
    if pid == 0:  # the child has no thread: stopping must neither join nor wait on the parent's lock
        try:
            t.stop()
            mm.close()
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert t.running  # the parent's thread is still its own
    t.stop()
    mm.close()
    os.close(fd)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 700), max_size=30))
def test_the_lateness_log_keeps_every_value_in_order(sizes):
    log = lateness.LatenessLog(block=256)  # many blocks from a few values
    want, k = [], 0
    for n in sizes:
        values = np.arange(k, k + n, dtype=np.int64)
        log.append(values)
        want.extend(values.tolist())
        k += n
    assert log.finish().tolist() == want
    assert log.finish().tolist() == []


def test_a_paced_replay_reads_ahead_and_keeps_every_frame(tmp_path):
    src, out = str(tmp_path / "rec.dat"), str(tmp_path / "out.dat")
    with Writer(src, page_size=64 << 10) as w:
        _tickers(w, 3000)  # several source pages: the read-ahead moves from page to page
    st_ = replay(src, out, speed=1_000_000.0, page_size=64 << 10)
    assert st_.frames == 3000 and len(st_.lateness) == 3000
    with Reader(src) as a, Reader(out) as b:
        assert [(f.msg_type, bytes(f.payload), f.gen_time) for f in a] == [
            (f.msg_type, bytes(f.payload), f.trigger_time) for f in b
        ]


def test_a_writer_without_a_thread_to_spare_still_writes(tmp_path):
    # a thread's stack is 8 MiB of address space: with 4 MiB left the pretoucher cannot start
    path = str(tmp_path / "j.dat")
    code = f"""
import resource
from kftools import Reader, Writer
from kftools.journal import pretouch
with open("/proc/self/statm") as fh:
    size = int(fh.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + (4 << 20), resource.RLIM_INFINITY))
with Writer({path!r}, page_size=64 << 10, pretouch=True) as w:
    assert w._pretoucher is None
    w.write_ticker("AAPL", 1.0, 1.0, 1.0, 1.0)
print(sum(1 for _ in Reader({path!r})))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
