"""Exhaustion: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so writes fail with EFBIG) and a full
disk (a small tmpfs) while writing, exporting, recovering and replaying: one clear error line, the
journal stays consistent, no partial output left behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest
from relhelp import CLEAN_SAMPLES, assert_clean_exit, cli, copy_journal, limited, raw_frames
from test_cpp import cpp_bin  # noqa: F401  (builds cpp/ once)

import kftools
from kftools.errors import OutputError

MULTIPAGE = next(p for p in CLEAN_SAMPLES if os.path.basename(p).startswith("multipage"))


def leftovers(d) -> list[str]:
    return sorted(n for n in os.listdir(d) if "tmp" in n)


def test_writer_refused_a_page_beyond_the_file_size_limit(tmp_path):
    path = tmp_path / "j.dat"
    res = cli("simulate", path, "--frames", 100, "--rate", 0, "--page-size", 1 << 20, preexec=limited(fsize=100_000))
    assert_clean_exit(res, "simulate")
    assert res.returncode == 2 and "cannot create a 1,048,576-byte page: File too large" in res.stderr
    assert not os.path.exists(path) and not leftovers(tmp_path)  # nothing half-made


def test_recover_beyond_the_file_size_limit_leaves_nothing(tmp_path):
    src = copy_journal(MULTIPAGE, str(tmp_path))
    res = cli("recover", src, "-o", tmp_path / "r.dat", preexec=limited(fsize=2000))
    assert_clean_exit(res, "recover")
    assert res.returncode == 2 and "File too large" in res.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith("r.dat")]
    assert kftools.verify(src).clean


def test_export_beyond_the_file_size_limit_leaves_nothing(tmp_path):
    src = copy_journal(MULTIPAGE, str(tmp_path))
    res = cli("export", "-q", src, tmp_path / "o.parquet", "--compression", "none", preexec=limited(fsize=3000))
    assert_clean_exit(res, "export")
    assert res.returncode != 0 and "kftools: error:" in res.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith("o.parquet") or "tmp" in n], os.listdir(tmp_path)


def test_replay_beyond_the_file_size_limit(tmp_path):
    src = copy_journal(MULTIPAGE, str(tmp_path))
    res = cli("replay", "--max", src, "-o", tmp_path / "p.dat", preexec=limited(fsize=1000))
    assert_clean_exit(res, "replay")
    assert res.returncode != 0 and "File too large" in res.stderr


# -- a full disk -------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    d = tmp_path / f"disk{uuid.uuid4().hex[:6]}"
    d.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(d)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill: {res.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.mark.parametrize("page", [65536, 200_000])
def test_writer_on_a_full_disk_fails_cleanly_at_a_page_boundary(small_disk, page):
    path = small_disk / "j.dat"
    res = cli("simulate", path, "--frames", 200_000, "--rate", 0, "--page-size", page)
    # before the free-space check: the process died of SIGBUS on a store into a page the disk could not back
    assert res.returncode != -7, "SIGBUS: the disk filled under a mapped page"
    assert_clean_exit(res, "simulate")
    assert res.returncode == 2 and "No space left on device" in res.stderr
    rep = kftools.verify(path)
    assert rep.clean and rep.frames > 0  # everything committed is there, nothing torn
    assert not leftovers(small_disk)
    frames, _ = raw_frames(path)
    assert len(frames) == rep.frames


def test_recover_and_export_to_a_full_disk_leave_nothing(tmp_path, small_disk):
    src = copy_journal(MULTIPAGE, str(tmp_path))
    with open(small_disk / "filler", "wb") as fh:  # leave ~40 KiB
        fh.write(bytes(512 * 1024 - 40 * 1024))
    res = cli("recover", src, "-o", small_disk / "r.dat")
    assert_clean_exit(res, "recover")
    assert res.returncode == 2 and "No space left" in res.stderr
    res = cli("export", "-q", src, small_disk / "o.parquet", "--compression", "none")
    assert_clean_exit(res, "export")
    assert res.returncode != 0
    assert sorted(os.listdir(small_disk)) == ["filler"]


def test_cpp_writer_on_a_full_disk_fails_cleanly(small_disk, cpp_bin):  # noqa: F811
    path = small_disk / "c.dat"
    res = subprocess.run([str(cpp_bin / "kfwrite"), str(path), "--frames", "200000", "--page-size", "200000"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != -7, "SIGBUS: the disk filled under a mapped page"
    assert res.returncode != 0 and "No space left on device" in res.stderr, (res.returncode, res.stderr)
    rep = kftools.verify(path)
    assert rep.clean and rep.frames > 0
    assert not leftovers(small_disk)


def test_replay_onto_a_disk_that_fills_leaves_no_clean_looking_partial(tmp_path, small_disk):
    """The first output page fits, a later one does not: the output must not stay behind looking complete."""
    from kftools.replay import Replay

    src = str(tmp_path / "big.dat")
    with kftools.Writer(src, page_size=1 << 20) as w:
        for i in range(30_000):  # ~2.4 MB of frames: more than the 512 KiB disk holds
            w.write_ticker("FILL", float(i), gen_time=1_800_000_000_000_000_000 + i)
    out = small_disk / "o.dat"
    rep = Replay(src, str(out), speed=None, page_size=128 * 1024)
    with pytest.raises(OutputError, match=r"No space left on device.*removed the incomplete") as e:
        rep.run()
    assert sorted(os.listdir(small_disk)) == [], "a partial output stayed under the final name"
    written = re.search(r"\(([\d,]+) frame\(s\) had been written", str(e.value))
    assert written and int(written.group(1).replace(",", "")) > 0, str(e.value)  # the first page was filled
