"""Fuzzing: random and mutated journals through info, cat, verify, recover, export and replay.

Never a traceback, a hang or an unbounded allocation; always a defined exit code and a
one-line reason; and the commands agree with each other on the valid prefix.
The fast subset runs a few hundred cases; `make torture` runs >= 10,000.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import struct
import tempfile

import pyarrow.parquet as pq
import pytest
import typer.main
import typer.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relhelp import assert_clean_exit, cli, deadline, limited, memory_limit, raw_frames
from typer.testing import CliRunner

import kftools
from kftools.cli import app
from kftools.journal.format import FRAME_HEADER, PAGE_HEADER, page_path

SCALE = float(os.environ.get("KFTOOLS_TORTURE_SCALE", "1"))
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=False, database=None)
INTERESTING = [0, 1, 31, 32, 33, 63, 64, 65, 4095, 4096, 4097, 8192, 65536, 2**31 - 1, 2**31, 2**32 - 1]
U32 = st.one_of(st.sampled_from(INTERESTING), st.integers(0, 2**32 - 1))


# -- journals ----------------------------------------------------------------------------------
frame_st = st.tuples(
    st.sampled_from([1, 2, 3, 200]), st.sampled_from(["AAPL", "MSFT", "", "X" * 16]), st.floats(-1e9, 1e9),
    st.integers(0, 40), st.binary(min_size=0, max_size=24),
)
_poke = st.tuples(st.just("poke"), st.integers(0, 9), st.integers(64, 16383), st.binary(min_size=1, max_size=8))
_frame = st.tuples(st.just("frame"), st.integers(0, 9), st.integers(0, 200), st.sampled_from(["length", "msg_type"]), U32)
_zero = st.tuples(st.just("zero_block"), st.integers(0, 9), st.integers(0, 3))
# below-header damage is weighted up: a broken first header only ever yields the one error line
mutation_st = st.one_of(
    _poke, _frame, _zero, _poke, _frame, _zero,
    st.tuples(st.just("poke"), st.integers(0, 9), st.integers(0, 63), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("scramble_block"), st.integers(0, 9), st.integers(0, 3), st.randoms(use_true_random=False)),
    st.tuples(st.just("header"), st.integers(0, 9), st.sampled_from(PAGE_HEADER.names[:8]), U32),
    st.tuples(st.just("truncate"), st.integers(0, 9), st.integers(0, 16384)),
    st.tuples(st.just("drop"), st.integers(0, 9)),
)


def build_base(d: str, frames, page_size: int) -> list[bytes]:
    path = os.path.join(d, "base.dat")
    with kftools.Writer(path, page_size=page_size) as w:
        for t, sym, price, pad, raw in frames:
            if t == 1:
                w.write_ticker(sym, price, padding=pad)
            elif t == 2:
                w.write_order(sym, 7, 1, price=price, padding=pad)
            elif t == 3:
                w.write_trade(sym, 9, price, 1.0, padding=pad)
            else:
                w.write(200, raw)
    pages = []
    i = 0
    while os.path.exists(page_path(path, i)):
        with open(page_path(path, i), "rb") as fh:
            pages.append(bytearray(fh.read()))
        os.unlink(page_path(path, i))
        i += 1
    return pages


def frame_offsets(page: bytes) -> list[int]:
    cur = int.from_bytes(page[:4], "little")
    offs, off = [], 64
    while off + 32 <= min(cur, len(page)):
        offs.append(off)
        n = int.from_bytes(page[off : off + 4], "little")
        off += 32 + n
    return offs


def mutate(pages: list[bytearray], mutations) -> list[bytearray | None]:
    pages = [bytearray(p) for p in pages]
    for m in mutations:
        i = m[1] % len(pages)
        p = pages[i]
        if p is None:
            continue
        kind = m[0]
        if kind == "poke":
            off = m[2] % max(1, len(p))
            p[off : off + len(m[3])] = m[3][: max(0, len(p) - off)]
        elif kind in ("zero_block", "scramble_block"):
            start = (m[2] * 4096) % max(4096, len(p))
            data = bytes(4096) if kind == "zero_block" else m[3].randbytes(4096)
            p[start : start + 4096] = data[: max(0, len(p) - start)]
        elif kind == "header" and len(p) >= 64:
            struct.pack_into("<I", p, PAGE_HEADER.offset(m[2]), m[3])
        elif kind == "frame":
            offs = frame_offsets(p)
            if offs:
                off = offs[m[2] % len(offs)] + FRAME_HEADER.offset(m[3])
                if off + 4 <= len(p):
                    struct.pack_into("<I", p, off, m[4])
        elif kind == "truncate":
            del p[m[2] % (len(p) + 1) :]
        elif kind == "drop":
            pages[i] = None
    return pages


@st.composite
def journals(draw):
    """(pages as bytes or None for a missing file) of a random or mutated journal."""
    if draw(st.integers(0, 9)) == 0:
        # pure noise, sometimes behind a plausible header
        body = bytearray(draw(st.binary(min_size=0, max_size=3000)))
        if draw(st.booleans()) and len(body) >= 64:
            body[:64] = PAGE_HEADER.struct.pack(draw(U32), 0, draw(U32), 1, 0x314A464B, 0, 0, 0, 0, b"")
        return None, [body]
    frames = draw(st.lists(frame_st, min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=120))
    page_size = draw(st.sampled_from([4096, 8192]))
    mutations = draw(st.lists(mutation_st, min_size=0, max_size=4))
    return (frames, page_size), mutations


def materialize(d: str, spec) -> str:
    base, mutations = spec
    if base is None:
        pages = mutations
    else:
        pages = mutate(build_base(d, *base), mutations)
    path = os.path.join(d, "j.dat")
    for i, p in enumerate(pages):
        if p is not None:
            with open(page_path(path, i), "wb") as fh:
                fh.write(p)
    return path


# -- checks ------------------------------------------------------------------------------------
RUNNER = CliRunner()
# typer rebuilds the click command on every invoke (~17 ms); build it once: 60x faster fuzzing
_CMD = typer.main.get_command(app)
_get_command = typer.testing._get_command
typer.testing._get_command = lambda a: _CMD if a is app else _get_command(a)


class Result:
    def __init__(self, r):
        self.returncode = r.exit_code
        self.stdout = r.stdout
        self.stderr = r.stderr
        self.exception = r.exception


def invoke(*args) -> Result:
    with deadline(60, " ".join(map(str, args))):
        r = RUNNER.invoke(app, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        raise AssertionError(f"kftools {' '.join(map(str, args))} raised:\n"
                             + "".join(traceback.format_exception(r.exception)))
    res = Result(r)
    assert_clean_exit(res, " ".join(map(str, args)))
    return res


def expected_prefix(path):
    """The valid prefix per the library (None if not a journal at all) and the verify exit code."""
    v = invoke("verify", "--json", path)
    STATS[f"verify exit {v.returncode}"] += 1
    if not v.stdout.startswith("{"):
        # the journal cannot be opened at all (not a journal, bad first header): an error line
        assert v.returncode in (2, 3) and "kftools: error:" in v.stderr, v.stderr
        return None, v
    rep = json.loads(v.stdout)
    assert v.returncode == (0 if rep["clean"] else 3)
    frames, damage = raw_frames(path)
    assert len(frames) == rep["frames"]
    assert (damage is None) == rep["clean"]
    return frames, v


def check_read(path, d):
    frames, v = expected_prefix(path)
    info = invoke("info", "--json", path)
    cat = invoke("cat", "--format", "jsonl", path)
    if frames is None:
        assert info.returncode == cat.returncode == v.returncode, (info.stderr, cat.stderr)
        return
    assert info.returncode == cat.returncode == v.returncode, (v.stderr, info.stderr, cat.stderr)
    assert json.loads(info.stdout)["frames"] == len(frames)
    assert len(cat.stdout.splitlines()) == len(frames)


def check_recover(path, d):
    frames, v = expected_prefix(path)
    out = os.path.join(d, "rec.dat")
    res = invoke("recover", path, "-o", out)
    if frames is None:
        assert res.returncode == v.returncode and not os.path.exists(out), res.stderr
        return
    assert res.returncode == (0 if v.returncode == 0 else (3 if frames else 1)), res.stderr
    got, damage = raw_frames(out)
    assert damage is None and got == frames  # exactly the valid prefix, byte for byte
    assert kftools.verify(out).clean
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]


def check_export(path, d):
    frames, v = expected_prefix(path)
    out = os.path.join(d, "out.parquet")
    res = invoke("export", "-q", path, out)
    if frames is None:
        assert res.returncode == v.returncode and not os.path.exists(out), res.stderr
        return
    assert res.returncode == v.returncode, res.stderr
    assert pq.ParquetFile(out).metadata.num_rows == len(frames)
    assert not [n for n in os.listdir(d) if "tmp" in n]


def check_replay(path, d):
    frames, v = expected_prefix(path)
    out = os.path.join(d, "replay.dat")
    res = invoke("replay", "--max", path, "-o", out)
    if frames is None:
        assert res.returncode == v.returncode and not os.path.exists(out), res.stderr
        return
    assert res.returncode == v.returncode, res.stderr
    got, damage = raw_frames(out)
    assert damage is None and len(got) == len(frames)
    # replay restamps gen_time and keeps the original as trigger_time: the payloads are identical
    assert [g[32:] for g in got] == [f[32:] for f in frames]


CHECKS = {"read": check_read, "recover": check_recover, "export": check_export, "replay": check_replay}


STATS: collections.Counter = collections.Counter()


def fuzz(check, spec):
    d = tempfile.mkdtemp(prefix="kffuzz")
    try:
        path = materialize(d, spec)
        with memory_limit():
            check(path, d)
        STATS[check.__name__] += 1
    finally:
        shutil.rmtree(d, ignore_errors=True)


FAST = {"read": 60, "recover": 40, "export": 25, "replay": 25}
SLOW = {"read": 4000, "recover": 2500, "export": 1750, "replay": 1750}


@pytest.mark.parametrize("target", list(CHECKS))
def test_fuzz(target):
    @settings(max_examples=FAST[target], **SETTINGS)
    @given(spec=journals())
    def run(spec):
        fuzz(CHECKS[target], spec)

    run()


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("target", list(CHECKS))
def test_fuzz_torture(target):
    @settings(max_examples=int(SLOW[target] * SCALE), **SETTINGS)
    @given(spec=journals())
    def run(spec):
        fuzz(CHECKS[target], spec)

    STATS.clear()
    run()
    print(f"\nfuzz {target}:", dict(STATS))


# -- a sample through real subprocesses, under an address-space limit --------------------------
def _subprocess_sample(n: int, seed: int, tmp_path):
    rng = random.Random(seed)
    for k in range(n):
        d = tmp_path / f"c{k}"
        d.mkdir()
        spec = _random_spec(rng)
        path = materialize(str(d), spec)
        lib, _ = expected_prefix(path)
        for args in (["verify", path], ["info", path], ["cat", path], ["recover", path, "-o", d / "r.dat"],
                     ["export", "-q", path, d / "o.parquet"], ["replay", "--max", path, "-o", d / "p.dat"]):
            res = cli(*args, timeout=60, preexec=limited(as_bytes=4 << 30))
            assert_clean_exit(res, " ".join(map(str, args)))
            if lib is None:
                assert res.returncode in (2, 3) and "kftools: error:" in res.stderr, (args, res.stderr)


def _random_spec(rng):
    frames = [(rng.choice([1, 2, 3, 200]), "AAPL", rng.random(), rng.randrange(40), rng.randbytes(rng.randrange(20)))
              for _ in range(rng.randrange(150))]
    muts = [rng.choice([
        ("poke", rng.randrange(9), rng.randrange(16384), rng.randbytes(rng.randrange(1, 8))),
        ("zero_block", rng.randrange(9), rng.randrange(4)),
        ("header", rng.randrange(9), rng.choice(PAGE_HEADER.names[:8]), rng.choice(INTERESTING)),
        ("frame", rng.randrange(9), rng.randrange(200), rng.choice(["length", "msg_type"]), rng.choice(INTERESTING)),
        ("truncate", rng.randrange(9), rng.randrange(16384)),
        ("drop", rng.randrange(9)),
    ]) for _ in range(rng.randrange(3))]
    return (frames, 4096), muts


def test_fuzz_sample_through_real_subprocesses(tmp_path):
    _subprocess_sample(2, 1, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fuzz_sample_through_real_subprocesses_torture(tmp_path):
    _subprocess_sample(int(40 * SCALE), 2, tmp_path)


def test_a_header_claiming_a_4_gib_page_allocates_nothing_of_that_size(tmp_path):
    """Found by the fuzz run: replay sized its output page from the input header's capacity
    (fixed in kftools/replay/core.py by its owner)."""
    path = materialize(str(tmp_path), (([], 4096), [("header", 0, "capacity", 2**32 - 1)]))
    with memory_limit():
        res = invoke("replay", "--max", path, "-o", tmp_path / "replay.dat")
    assert res.returncode == 0, res.stderr
    assert os.path.getsize(tmp_path / "replay.dat") < 64 << 20


def test_snapshot_readers_agree_with_verify_on_a_bad_cursor(tmp_path):
    """Found by the fuzz run: with a cursor below the header, replay (which reads up to
    end_position()) kept fewer frames than verify."""
    spec = (([(1, "AAPL", 0.0, 0, b""), (1, "AAPL", 0.0, 0, b"")], 4096),
            [("frame", 0, 1, "length", 4095), ("poke", 0, 0, b"\x00")])
    check_replay(materialize(str(tmp_path), spec), str(tmp_path))
