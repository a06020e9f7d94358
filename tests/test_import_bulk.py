"""`kftools import` builds each batch's frames with numpy and appends them in bulk: the same bytes as the frames
written one by one, on every path (typed rows, padding, raw payloads, frames too wide for the matrix, nulls)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kftest import ROOT

from kftools.export import export, import_parquet
from kftools.export.importer import WIDEST_MATRIX_ROW
from kftools.journal.format import DEPTH, MsgType
from kftools.journal.reader import Reader
from kftools.journal.writer import Writer


def write_every_kind(path, *, wide: bool) -> None:
    with Writer(path, page_size=1 << 16) as w:
        for k in range(600):
            sym = ["BTCUSDT", "A", "0123456789ABCDEF", ""][k % 4]  # full width and empty text too
            w.write_ticker(sym, k + 0.5, k, k + 1, k * 2, gen_time=10**18 + k, trigger_time=k % 3, source=k % 7,
                           dest=k % 5, padding=16 if k % 9 == 0 else 0)
            if k % 3 == 0:
                w.write_order(sym, k, k % 2, k % 5, 1.25, 2.0, 0.5, f"cid-{k}" * (k % 4), gen_time=10**18 + k)
            if k % 5 == 0:
                w.write_trade(sym, k, 99.5, 3.0, 1, k // 2, gen_time=10**18 + k)
            if k % 7 == 0:
                w.write_depth(sym, [(100 - i, i + 1) for i in range(k % 11)], [(101 + i, 2.0) for i in range(3)],
                              gen_time=10**18 + k)
            if k % 11 == 0:
                w.write(200, bytes(range(k % 23)), gen_time=10**18 + k)  # a type without a schema: raw bytes
            if wide and k % 50 == 0:
                w.write(int(MsgType.DEPTH), bytes(DEPTH.size), padding=WIDEST_MATRIX_ROW, gen_time=10**18 + k)


def raw(path) -> list[bytes]:
    with Reader(path) as r:
        return [bytes(f.raw) for f in r]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("bulk")
    out = {}
    for wide in (False, True):
        src, pq = d / f"src{wide}.dat", d / f"src{wide}.parquet"
        write_every_kind(src, wide=wide)
        export(str(src), str(pq))
        out[wide] = (src, pq)
    return out


@pytest.mark.parametrize("wide", [False, True], ids=["matrix", "frame_by_frame"])
def test_import_rebuilds_every_kind_of_frame_byte_identical(exported, tmp_path, wide):
    src, pq = exported[wide]
    back = tmp_path / "back.dat"
    import_parquet(str(pq), str(back))
    assert raw(back) == raw(src)
    with Reader(src) as a, Reader(back) as b:
        assert a.page_count() == b.page_count() > 1  # pages roll where they rolled


def test_import_does_not_load_pandas(exported, tmp_path):
    """Arrow's to_numpy, fill_null and take with a numpy index import pandas: a fifth of an import's time."""
    src, out = exported[False]
    back = tmp_path / "back.dat"
    code = ("import sys; from kftools.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('pandas' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code, "import", str(out), str(back)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
    assert raw(back) == raw(src)
