"""Reader.to_arrow / to_pandas / to_polars equal the Parquet export of the same journals and selection; the reprs
say what a notebook needs (pages, frames, time range, writer state)."""

from __future__ import annotations

import os

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kftest import ROOT, SAMPLES_DIR, run_cli

import kftools
from kftools.journal.schemas import load_registry

CLEAN = os.path.join(SAMPLES_DIR, "clean.dat")
ENGINE = os.path.join(SAMPLES_DIR, "engine.dat")
USER = os.path.join(SAMPLES_DIR, "user_types.dat")
SCHEMA = os.path.join(SAMPLES_DIR, "user_types.toml")
KF_HOME = os.path.join(ROOT, "tests", "data", "kungfu", "kf_home")


def exported(tmp_path, *args) -> str:
    out = str(tmp_path / f"out{len(os.listdir(tmp_path))}.parquet")
    r = run_cli("export", *args, out)
    assert r.returncode in (0, 3), r.stderr
    return out


def decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns as their values: two writers of one column may choose different dictionaries."""
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    return table.combine_chunks()


def same(table, path) -> None:
    want = pq.read_table(path)
    assert table.schema.equals(want.schema, check_metadata=False)
    assert decoded(table).equals(decoded(want))
    # what import needs to rebuild the journal travels with the table too
    assert table.schema.metadata[b"kftools"] == want.schema.metadata[b"kftools"]


@pytest.mark.parametrize("paths, filters, args", [
    ([CLEAN], {}, []),
    ([CLEAN], {"types": ["Ticker"], "symbols": ["AAPL"], "start_time": "+0.1s"},
     ["--type", "Ticker", "--symbol", "AAPL", "--start", "+0.1s"]),
    ([CLEAN, ENGINE], {}, []),  # merged: a journal column
    ([CLEAN, ENGINE], {"types": ["Order,Trade"]}, ["--type", "Order,Trade"]),
    ([KF_HOME], {}, []),  # Kungfu: labelled enums, ten-level list columns
])
def test_to_arrow_equals_the_parquet_export(tmp_path, paths, filters, args):
    with kftools.open_many(paths) if len(paths) > 1 or os.path.isdir(paths[0]) else kftools.Reader(paths[0]) as r:
        table = r.to_arrow(**filters)
        assert table.num_rows
        out = exported(tmp_path, *paths, *args)
        same(table, out)
        assert r.to_pandas(**filters).equals(pq.read_table(out).to_pandas())
        assert r.to_polars(**filters).equals(pl.read_parquet(out))


def test_to_arrow_with_a_schema_and_us_timestamps(tmp_path):
    with kftools.Reader(USER, registry=load_registry([SCHEMA])) as r:
        same(r.to_arrow(timestamps="us"), exported(tmp_path, USER, "--schema", SCHEMA, "--timestamps", "us"))
        with pytest.raises(kftools.UsageError, match="timestamps"):
            r.to_arrow(timestamps="s")
        with pytest.raises(kftools.UnknownType):
            r.to_arrow(types=["NoSuchType"])


def test_reprs_say_pages_frames_times_and_writer():
    with kftools.Reader(CLEAN) as r:
        assert repr(r) == f"<kftools.Reader {CLEAN!r} (kftools): 1 page(s), writer exited>"
        html = r._repr_html_()
        for text in (CLEAN, "<td>400</td>", "2026-11-27T17:30:00.000000000Z", "2026-11-27T17:30:00.399000000Z",
                     "<td>exited</td>"):
            assert text in html
    with kftools.open_many([CLEAN, ENGINE]) as m:
        assert repr(m).startswith(f"<kftools.MergedReader of 2 journals ({CLEAN}, {ENGINE}): 2 page(s), writers ")
        html = m._repr_html_()
        assert html.count("<tr>") == 4 and "total: 2 journals" in html and "<td>600</td>" in html
