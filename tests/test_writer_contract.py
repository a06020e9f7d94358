"""One writer contract, two writers: the same steps run on the Python Writer and on the C++ header's Writer.

The C++ Writer is driven by tests/writer_driver.cpp, a real process; the Python twin of that program is
:func:`python_writer` below. Each case states what the contract says (the outcome, the error class as named
in kftools.errors, what is left on disk) and checks both writers against it, and the files each leaves
against the other's, byte for byte (the writer's pid aside).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import kftools
from kftools import errors
from kftools.journal.format import MAGIC, PAGE_HEADER, PAGE_HEADER_SIZE, SUMMARIES_SUFFIX, PageFlag, page_path

ROOT = Path(__file__).resolve().parents[1]
PAGE = 4096
# the kftools.errors classes a writer raises on purpose, most specific first
CLASSES = ["JournalLocked", "CorruptJournal", "NotAJournal", "FrameTooLarge", "UsageError", "OutputError",
           "KftoolsError"]


def _page_header(page_index: int) -> bytes:
    """A page header as a writer begins one (fields by name: the declaration decides their order)."""
    values = {"write_cursor": PAGE_HEADER_SIZE, "capacity": PAGE, "version": 1, "magic": MAGIC,
              "page_index": page_index, "writer_pid": 1}
    return PAGE_HEADER.struct.pack(*(values.get(f.name, b"" if f.is_text else 0) for f in PAGE_HEADER.fields))


@pytest.fixture(scope="session")
def driver(tmp_path_factory) -> Path:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx}) on PATH: the C++ header cannot be tested")
    exe = tmp_path_factory.mktemp("contract") / "writer_driver"
    res = subprocess.run([cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'cpp' / 'include'}",
                          "-o", str(exe), str(ROOT / "tests" / "writer_driver.cpp")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


def payload(k: int, n: int) -> bytes:
    return bytes((7 * k + 13 * i + 1) & 0xFF for i in range(n))


def class_of(e: BaseException) -> str:
    for name in CLASSES:
        if isinstance(e, getattr(errors, name)):
            return name
    return f"unexpected {type(e).__name__}"


def python_writer(path, page_size: int, *steps: str) -> str:
    """The Python twin of writer_driver.cpp: the same steps, the same answer line (no ``hold``)."""
    k = 0
    try:
        with kftools.Writer(path, page_size or None, source=7, append=True) as w:
            for step in steps:
                if step.startswith("@"):
                    k = int(step[1:])
                    continue
                t, n_bytes, n = (int(x) for x in step.split(":"))
                for _ in range(n):
                    w.write(t, payload(k, n_bytes), gen_time=1_000_000 + k, trigger_time=k, dest=k % 5)
                    k += 1
        return f"ok {k}"
    except Exception as e:  # noqa: BLE001 - the contract names the class; anything else is a finding
        return f"error {class_of(e)}: {e}"


def cpp_writer_of(exe: Path) -> Callable[..., str]:
    def cpp_writer(path, page_size: int, *steps: str) -> str:
        res = subprocess.run([str(exe), str(path), str(page_size), *steps], capture_output=True, text=True,
                             timeout=30)
        assert res.stderr == "" and res.stdout.count("\n") == 1, res.stdout + res.stderr
        assert res.returncode == (0 if res.stdout.startswith("ok") else 1)
        return res.stdout.strip()
    return cpp_writer


@pytest.fixture(params=["python", "cpp"])
def writer(request) -> Callable[..., str]:
    if request.param == "python":
        return python_writer
    return cpp_writer_of(request.getfixturevalue("driver"))


def outcome(line: str) -> str:
    """``ok N`` or ``error Class`` (messages are each writer's own)."""
    return line if line.startswith("ok") else line.split(":")[0]


def files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` by name, pages with their writer's pid blanked (it is the only byte that may differ).
    ``<journal>.summaries`` is left out: the Python writer records its sealed pages' summaries, the C++ writer
    does not, and readers recompute what is missing (FORMAT.md)."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.name.endswith(SUMMARIES_SUFFIX):
            continue
        if p.is_symlink():
            out[p.name] = f"-> {os.readlink(p)}".encode()
        elif p.is_file():
            data = bytearray(p.read_bytes())
            if len(data) >= PAGE_HEADER_SIZE and struct.unpack_from("<I", data, 16)[0] == MAGIC:
                data[24:28] = bytes(4)
            out[p.name] = bytes(data)
        else:
            out[p.name] = b"<not a file>"
    return out


def flags(path) -> list[int]:
    out, i = [], 0
    while os.path.exists(page_path(str(path), i)):
        with open(page_path(str(path), i), "rb") as fh:
            out.append(PAGE_HEADER.unpack(fh.read(PAGE_HEADER_SIZE))["flags"])
        i += 1
    return out


def frames(path) -> list[tuple]:
    with kftools.Reader(path) as r:
        return [(f.msg_type, f.gen_time, f.trigger_time, f.source, f.dest, bytes(f.payload)) for f in r]


def both(tmp_path: Path, driver: Path, case: Callable[[Callable[..., str], Path], object]) -> None:
    """Run ``case`` for each writer in a folder of its own; what each returns and leaves on disk must agree."""
    seen = {}
    for name, w in (("python", python_writer), ("cpp", cpp_writer_of(driver))):
        folder = tmp_path / name
        folder.mkdir()
        seen[name] = (case(w, folder), files(folder))
    assert seen["python"] == seen["cpp"]


def expected(k0: int, steps: list[tuple[int, int, int]]) -> list[tuple]:
    out, k = [], k0
    for t, n_bytes, n in steps:
        for _ in range(n):
            out.append((t, 1_000_000 + k, k, 7, k % 5, payload(k, n_bytes)))
            k += 1
    return out


# -- writing and rolling -----------------------------------------------------------------


def test_writes_and_closes(writer, tmp_path):
    j = tmp_path / "feed.dat"
    assert writer(j, PAGE, "1:48:3", "200:20:5", "3:56:2") == "ok 10"
    assert frames(j) == expected(0, [(1, 48, 3), (200, 20, 5), (3, 56, 2)])
    assert flags(j) == [PageFlag.CLOSED]
    assert kftools.verify(j).clean


def test_rolls_pages_sealing_each(writer, tmp_path):
    j = tmp_path / "feed.dat"
    assert writer(j, PAGE, "1:48:200") == "ok 200"
    assert frames(j) == expected(0, [(1, 48, 200)])
    assert flags(j) == [PageFlag.SEALED] * 3 + [PageFlag.CLOSED]
    assert not list(tmp_path.glob("*.tmp"))


def test_resumes_after_the_other_writer(writer, driver, tmp_path):
    j = tmp_path / "feed.dat"
    other = cpp_writer_of(driver) if writer is python_writer else python_writer
    assert other(j, PAGE, "1:48:30") == "ok 30"
    assert writer(j, 0, "@30", "200:20:100") == "ok 130"  # page size 0: the last page's
    assert frames(j) == expected(0, [(1, 48, 30), (200, 20, 100)])
    assert kftools.verify(j).clean


def test_both_writers_leave_the_same_bytes(driver, tmp_path):
    def case(w, folder):
        j = folder / "feed.dat"
        return [w(j, PAGE, "1:48:40", "2:88:20", "200:7:30"), w(j, PAGE, "@90", "9:336:12", "10:16:3")]
    both(tmp_path, driver, case)


def test_frame_too_large_for_a_page(writer, tmp_path):
    j = tmp_path / "feed.dat"
    assert outcome(writer(j, PAGE, "1:48:2", f"200:{PAGE}:1")) == "error FrameTooLarge"
    assert frames(j) == expected(0, [(1, 48, 2)])
    assert kftools.verify(j).clean


# -- short payloads: never write a frame readers call damage ---------------------------------


@pytest.mark.parametrize("msg_type, short", [(1, 8), (2, 87), (9, 335), (10, 0)])
def test_short_payload_is_refused_and_nothing_written(writer, tmp_path, msg_type, short):
    j = tmp_path / "feed.dat"
    assert outcome(writer(j, PAGE, "1:48:2", f"{msg_type}:{short}:1")) == "error UsageError"
    assert frames(j) == expected(0, [(1, 48, 2)])
    assert kftools.verify(j).clean
    assert writer(j, PAGE, "@2", "1:48:1") == "ok 3"  # and the journal takes frames after it


def test_msg_type_0_is_refused(writer, tmp_path):
    j = tmp_path / "feed.dat"
    assert outcome(writer(j, PAGE, "1:48:1", "0:8:1")) == "error UsageError"
    assert frames(j) == expected(0, [(1, 48, 1)])


# -- temporaries: a writer removes only a page it provably left ------------------------------


def test_other_tmp_files_are_left_alone(writer, tmp_path):
    j = tmp_path / "feed.dat"
    assert writer(j, PAGE, "1:48:5") == "ok 5"
    notes = {"feed.dat.notes.tmp": b"my notes", "feed.dat.x.tmp": b"x", "feed.datx.1.tmp": b""}
    for name, data in notes.items():
        (tmp_path / name).write_bytes(data)
    assert writer(j, PAGE, "@5", "1:48:200") == "ok 205"  # opens and rolls pages 1..3
    for name, data in notes.items():
        assert (tmp_path / name).read_bytes() == data, name
    assert frames(j) == expected(0, [(1, 48, 205)])


@pytest.mark.parametrize("left", ["zeros", "header", "empty"])
def test_a_page_a_killed_writer_was_making_is_removed(writer, tmp_path, left):
    j = tmp_path / "feed.dat"
    assert writer(j, PAGE, "1:48:5") == "ok 5"
    tmp = tmp_path / "feed.dat.1.tmp"
    if left == "header":  # killed between the header and the rename
        tmp.write_bytes(_page_header(page_index=1) + bytes(PAGE - 64))
    else:
        tmp.write_bytes(bytes(PAGE if left == "zeros" else 0))
    assert writer(j, PAGE, "@5", "1:48:100") == "ok 105"
    assert not tmp.exists()
    assert frames(j) == expected(0, [(1, 48, 105)])


@pytest.mark.parametrize("left", ["foreign", "other_index", "symlink"])
def test_a_next_page_tmp_that_is_not_ours_stops_the_roll(writer, tmp_path, left):
    """Never through a link, never over a file that is not provably this journal's page."""
    j = tmp_path / "feed.dat"
    assert writer(j, PAGE, "1:48:5") == "ok 5"
    tmp = tmp_path / "feed.dat.1.tmp"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious" * 100)
    if left == "foreign":
        tmp.write_bytes(b"\xff" * 100)
    elif left == "other_index":
        tmp.write_bytes(_page_header(page_index=7))
    else:
        tmp.symlink_to(victim)
    before = tmp.read_bytes()
    assert outcome(writer(j, PAGE, "@5", "1:48:100")) == "error OutputError"
    assert tmp.read_bytes() == before and victim.read_bytes() == b"precious" * 100
    assert kftools.verify(j).clean and len(frames(j)) > 5  # what fit on page 0 is there


# -- foreign files and stale pages -------------------------------------------------------------


@pytest.mark.parametrize("thing, error", [
    ("directory", "OutputError"), ("fifo", "OutputError"), ("short_text", "NotAJournal"),
    ("text", "NotAJournal"), ("later_page", "NotAJournal"),
])
def test_a_path_that_is_not_a_journal_is_refused_untouched(writer, tmp_path, thing, error):
    j = tmp_path / "feed.dat"
    if thing == "directory":
        j.mkdir()
    elif thing == "fifo":
        os.mkfifo(j)
    elif thing == "short_text":
        j.write_bytes(b"hello\n")
    elif thing == "text":
        j.write_bytes(b"hello\n" * 100)
    else:
        assert python_writer(tmp_path / "other.dat", PAGE, "1:48:100") == "ok 100"
        os.rename(tmp_path / "other.dat.1", j)
        os.unlink(tmp_path / "other.dat")
    before = files(tmp_path)
    assert outcome(writer(j, PAGE, "1:48:1")) == f"error {error}"
    assert files(tmp_path) == before


@pytest.mark.parametrize("stale", ["feed.dat.1", "feed.dat.3", "feed.dat.1.zst"])
def test_a_new_journal_never_adopts_stale_pages(writer, tmp_path, stale):
    (tmp_path / stale).write_bytes(b"page of an earlier run")
    before = files(tmp_path)
    assert outcome(writer(tmp_path / "feed.dat", PAGE, "1:48:1")) == "error OutputError"
    assert files(tmp_path) == before  # not even an empty first page


@pytest.mark.parametrize("damage", ["gap", "sealed_last", "msg_type_0", "cursor_past_end"])
def test_a_journal_verify_does_not_call_clean_is_refused_untouched(writer, tmp_path, damage):
    j = tmp_path / "feed.dat"
    assert python_writer(j, PAGE, "1:48:300") == "ok 300"  # pages 0..4
    if damage == "gap":
        os.unlink(page_path(str(j), 2))
    elif damage == "sealed_last":
        for n in (2, 3, 4):
            os.unlink(page_path(str(j), n))
    else:
        with open(page_path(str(j), 1), "r+b") as fh:
            if damage == "msg_type_0":
                fh.seek(PAGE_HEADER_SIZE + 80 * 5 + 4)
                fh.write(bytes(4))
            else:
                fh.write(struct.pack("<I", PAGE + 8))
    before = files(tmp_path)
    line = writer(j, PAGE, "@300", "1:48:1")
    assert outcome(line) == "error CorruptJournal" and "recover" in line
    assert files(tmp_path) == before


# -- the single-writer lock ---------------------------------------------------------------------


@pytest.mark.parametrize("holder", ["python", "cpp"])
def test_a_held_journal_is_refused(writer, driver, tmp_path, holder):
    j = tmp_path / "feed.dat"
    assert python_writer(j, PAGE, "1:48:3") == "ok 3"
    if holder == "python":
        with kftools.Writer(j, append=True):
            before = files(tmp_path)
            line = writer(j, PAGE, "@3", "1:48:1")
            assert files(tmp_path) == before
    else:
        proc = subprocess.Popen([str(driver), str(j), str(PAGE), "hold"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().split() == ["ready", str(proc.pid)], proc.stderr.read()
            before = files(tmp_path)
            line = writer(j, PAGE, "@3", "1:48:1")
            assert files(tmp_path) == before
            proc.stdin.close()
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()
            proc.wait()
    pid = os.getpid() if holder == "python" else proc.pid
    assert outcome(line) == "error JournalLocked" and f"pid {pid}" in line
    assert writer(j, PAGE, "@3", "1:48:1") == "ok 4"  # the lock goes with its holder

