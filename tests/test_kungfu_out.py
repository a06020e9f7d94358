"""`kftools replay --format kungfu-*`: a recording written as a Kungfu runtime journal, read back frame for frame
by a reader that shares no code with kftools (tests/kungfu_reader.cpp, from Kungfu's public layouts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from kftest import ROOT, run_cli

import kftools
from kftools.journal import yijinjing as kf
from kftools.journal.kungfu_out import murmur3_32, page_size_for

DATA = os.path.join(ROOT, "tests", "data", "kungfu")
TD = os.path.join(DATA, "kf_home", "runtime", "td", "sim", "acct1", "journal", "live")
STRATEGY = os.path.join(DATA, "kf_home", "runtime", "strategy", "default", "demo", "journal", "live")
GOLDEN = os.path.join(DATA, "journal-wire-v1.golden.json")


@pytest.fixture(scope="module")
def kungfu_reader(tmp_path_factory) -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx})")
    exe = str(tmp_path_factory.mktemp("cpp") / "kungfu_reader")
    res = subprocess.run([cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-o", exe,
                          os.path.join(ROOT, "tests", "kungfu_reader.cpp")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


def fnv1a64(data: bytes) -> int:
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def read_back(exe: str, folder: str) -> list[list[int]]:
    res = subprocess.run([exe, folder], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, (res.returncode, res.stderr)
    return [[int(x) for x in line.split()[:8]] + [int(line.split()[8], 16)] for line in res.stdout.splitlines()]


def source_frames(folder: str) -> list:
    with kftools.Reader(folder) as r:
        return [(f.msg_type, f.gen_time, bytes(f.payload)) for f in r]


def test_murmur3_is_kungfu_s_location_hash():
    assert murmur3_32(b"", 0) == 0 and murmur3_32(b"", 1) == 0x514E28B7
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog", 0) == 0x2E4FF723
    assert murmur3_32(b"hello", 0) == 0x248BFA47


@pytest.mark.parametrize("pace", [["--max"], ["--speed", "1000000"]])
def test_a_replay_into_kungfu_2_4_is_read_back_frame_for_frame_by_kungfu_s_reader_rules(tmp_path, kungfu_reader, pace):
    home = str(tmp_path / "kf_home")
    r = run_cli("replay", TD, *pace, "--format", "kungfu-2.4", "--kf-home", home, "--location", "td/sim/feed/replay")
    assert r.returncode == 0, r.stderr
    folder = os.path.join(home, "runtime", "td", "sim", "feed", "journal", "replay")
    pages = sorted(os.listdir(folder))
    # td to dest 0: 1 MiB pages; the 5,001 frames need two, sealed by a PageEnd the reader crosses
    assert pages == ["00000000.1.journal", "00000000.2.journal"]
    assert {os.path.getsize(os.path.join(folder, p)) for p in pages} == {page_size_for("td", 0)} == {1 << 20}
    got = read_back(kungfu_reader, folder)
    want = source_frames(TD)
    uid = murmur3_32(b"td/sim/feed/replay")
    assert got[0][2] == kf.MsgType.SessionStart and got[-1][2] == kf.MsgType.SessionEnd
    body = got[1:-1]
    assert len(body) == len(want) == 5001
    for g, (msg_type, gen_time, payload) in zip(body, want, strict=True):
        page, off, mt, gen, trig, source, dest, n, digest = g
        assert (mt, trig, source, dest, n, digest) == (msg_type, gen_time, uid, 0, len(payload), fnv1a64(payload))
    assert [g[3] for g in body] == sorted(g[3] for g in body)  # replay times, in order
    assert {g[0] for g in body} == {1, 2}
    # and kftools reads it as a Kungfu 2.4 journal, named by its location
    r = run_cli("verify", os.path.join(home))
    assert r.returncode == 0 and "td/sim/feed/replay/00000000" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("gen", kf.GENERATIONS, ids=lambda g: g.name)
def test_every_generation_can_be_written_and_read_back(tmp_path, kungfu_reader, gen):
    home = str(tmp_path / "kf_home")
    r = run_cli("replay", STRATEGY, "--max", "--format", gen.name, "--kf-home", home, "--location",
                "strategy/default/replayed/replay")
    assert r.returncode == 0, r.stderr
    folder = os.path.join(home, "runtime", "strategy", "default", "replayed", "journal", "replay")
    want = source_frames(STRATEGY)
    with kftools.Reader(folder) as rd:
        assert rd.pages.fmt is gen.fmt and rd.damage is None
        got = [f for f in rd if f.msg_type == 777 or f.msg_type in {m for m, _g, _p in want}]
    marks = {gen.session_start} if gen.session_start else set()
    got = [f for f in got if f.msg_type not in marks or f.trigger_time]
    assert [(f.msg_type, f.trigger_time) for f in got] == [(m, t) for m, t, _p in want]
    pad = 8 if gen is kf.KUNGFU_WIRE_V1 else 1  # v4 rounds payloads up to a machine word
    assert all(bytes(f.payload)[: len(p)] == p and len(f.payload) == -(-len(p) // pad) * pad
               for f, (_m, _t, p) in zip(got, want, strict=True))
    if gen in (kf.KUNGFU_2_4, kf.KUNGFU_WIRE_V1):  # the generations the independent reader knows
        assert len([x for x in read_back(kungfu_reader, folder) if x[4]]) == len(want)


def test_a_wire_v1_output_page_header_is_laid_out_as_the_golden_bytes(tmp_path):
    with open(GOLDEN) as fh:
        golden = bytes.fromhex(json.load(fh)["page_header_hex"])
    home = str(tmp_path / "kf_home")
    r = run_cli("replay", STRATEGY, "--max", "--format", "kungfu-wire-v1", "--kf-home", home, "--location",
                "system/kf/replay/replay")
    assert r.returncode == 0, r.stderr
    page = os.path.join(home, "runtime", "system", "kf", "replay", "journal", "replay", "00000000.1.journal")
    with open(page, "rb") as fh:
        head = fh.read(32)
    ph = kf.WIRE_V1_PAGE_HEADER
    # epoch, header lengths and status as the golden page; page size and the last frame's position are this page's
    for name in ("version", "page_header_length", "frame_header_length", "status", "_pad0"):
        a, n = ph.offset(name), ph.field(name).size
        assert head[a : a + n] == golden[a : a + n], name
    assert ph.unpack(head)["page_size"] == os.path.getsize(page) == 1 << 20


@pytest.mark.parametrize("args, said", [
    (["--format", "kungfu-2.4"], "give --kf-home DIR and --location"),
    (["--format", "kungfu-9", "--kf-home", "K", "--location", "md/a/b/live"], "--format 'kungfu-9': one of kftools"),
    (["--format", "kungfu-2.4", "--kf-home", "K", "--location", "md/a/b"], "give category/group/name/mode"),
    (["--format", "kungfu-2.4", "--kf-home", "K", "--location", "xx/a/b/live"], "category 'xx' is not one of"),
    (["--kf-home", "K", "--location", "md/a/b/live"], "--kf-home and --location are for --format"),
    (["--format", "kungfu-2.4", "--kf-home", "K", "--location", "md/a/b/live", "-o", "x.dat"], "not to -o"),
])
def test_bad_kungfu_output_options_are_one_line(tmp_path, args, said):
    args = [str(tmp_path / a) if a == "K" else a for a in args]
    r = run_cli("replay", STRATEGY, "--max", *args)
    assert r.returncode == 2 and said in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not os.path.exists(tmp_path / "K")


def test_an_existing_kungfu_journal_is_not_overwritten_without_force(tmp_path):
    home = str(tmp_path / "kf_home")
    args = ["replay", STRATEGY, "--max", "--format", "kungfu-2.4", "--kf-home", home, "--location", "md/sim/x/replay"]
    assert run_cli(*args).returncode == 0
    page = os.path.join(home, "runtime", "md", "sim", "x", "journal", "replay", "00000000.1.journal")
    before = os.stat(page).st_mtime_ns
    r = run_cli(*args)
    assert r.returncode == 2 and "already holds a Kungfu journal; --force replaces it" in r.stderr
    assert os.stat(page).st_mtime_ns == before and os.path.getsize(page) == 128 << 20  # md: 128 MiB pages
    assert run_cli(*args, "--force").returncode == 0
