"""Hostile Parquet to `kftools import`: one line, exit 2, nothing written (issue 12 §3)."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kftest import SAMPLES_DIR, run_cli

import kftools

CLEAN = os.path.join(SAMPLES_DIR, "clean.dat")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("good")
    out = str(d / "good.parquet")
    r = run_cli("export", CLEAN, out, "-q", "--compression", "none", "--row-group-size", "100")
    assert r.returncode == 0, r.stderr
    return out


def rewrite(good: str, dst: str, change) -> None:
    """Write ``good`` again after ``change(table) -> table`` (metadata kept unless the change sets it)."""
    t = pq.read_table(good)
    pq.write_table(change(t), dst, compression="none")


def with_meta(t: pa.Table, raw: bytes) -> pa.Table:
    return t.replace_schema_metadata({**(t.schema.metadata or {}), b"kftools": raw})


def meta_of(t: pa.Table) -> dict:
    return json.loads(t.schema.metadata[b"kftools"])


def set_column(t: pa.Table, name: str, arr) -> pa.Table:
    i = t.schema.get_field_index(name)
    return t.set_column(i, pa.field(name, arr.type), arr).replace_schema_metadata(t.schema.metadata)


def corrupt_pages(good: str, dst: str) -> None:
    data = bytearray(open(good, "rb").read())
    for k in range(200, len(data) // 2, 97):  # scribble over data pages, keep the footer
        data[k] ^= 0x5A
    open(dst, "wb").write(bytes(data))


HOSTILE = {
    "metadata is not JSON": lambda g, d: rewrite(g, d, lambda t: with_meta(t, b"{not json")),
    "metadata is a list": lambda g, d: rewrite(g, d, lambda t: with_meta(t, b"[1, 2]")),
    "types of the wrong shape": lambda g, d: rewrite(g, d, lambda t: with_meta(
        t, json.dumps({**meta_of(t), "types": [{"id": "x"}]}).encode())),
    "columns of the wrong shape": lambda g, d: rewrite(g, d, lambda t: with_meta(
        t, json.dumps({**meta_of(t), "columns": [1]}).encode())),
    "a missing column": lambda g, d: rewrite(g, d, lambda t: t.drop_columns(["gen_time"])),
    "a wrong column type": lambda g, d: rewrite(g, d, lambda t: set_column(
        t, "msg_type", pa.array([str(x) for x in t.column("msg_type").to_pylist()]))),
    "a null gen_time": lambda g, d: rewrite(g, d, lambda t: set_column(
        t, "gen_time", pa.array([None, *t.column("gen_time").to_pylist()[1:]], t.schema.field("gen_time").type))),
    "a length smaller than the layout": lambda g, d: rewrite(g, d, lambda t: set_column(
        t, "length", pa.array([4, *t.column("length").to_pylist()[1:]], t.schema.field("length").type))),
    "a null type id": lambda g, d: rewrite(g, d, lambda t: set_column(
        t, "msg_type", pa.array([None, *t.column("msg_type").to_pylist()[1:]],
                                   t.schema.field("msg_type").type))),
    "a type 0": lambda g, d: rewrite(g, d, lambda t: set_column(
        t, "msg_type", pa.array([0, *t.column("msg_type").to_pylist()[1:]], t.schema.field("msg_type").type))),
    "corrupted data pages": corrupt_pages,
    "not Parquet at all": lambda g, d: open(d, "wb").write(b"PAR1" + os.urandom(5000)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_parquet_is_one_line_exit_2_nothing_written(tmp_path, good, case):
    src = str(tmp_path / "hostile.parquet")
    HOSTILE[case](good, src)
    before = sorted(os.listdir(tmp_path))
    r = run_cli("import", src, tmp_path / "out.dat")
    assert r.returncode == 2, (case, r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kftools: error: ") and "Traceback" not in r.stderr, r.stderr
    assert "hostile.parquet" in lines[0]
    assert sorted(os.listdir(tmp_path)) == before  # no journal, no page, no temporary


def test_the_good_file_imports(tmp_path, good):
    r = run_cli("import", good, tmp_path / "back.dat")
    assert r.returncode == 0, r.stderr
    assert [bytes(f.raw) for f in kftools.Reader(str(tmp_path / "back.dat"))] == [
        bytes(f.raw) for f in kftools.Reader(CLEAN)]
