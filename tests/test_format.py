"""The format as the issue and FORMAT.md state it, and the type registry."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kftools.errors import SchemaError, UnknownType
from kftools.journal import format as fmt
from kftools.journal.registry import TypeRegistry
from kftools.journal.schemas import load_registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_page_header_offsets_match_the_engine_layout():
    h = fmt.PAGE_HEADER
    assert h.size == 64
    assert [(n, h.offset(n)) for n in ("write_cursor", "read_cursor", "capacity", "version")] == [
        ("write_cursor", 0), ("read_cursor", 4), ("capacity", 8), ("version", 12)]
    assert h.struct.format.startswith("<")


def test_frame_header_offsets_match_the_engine_layout():
    f = fmt.FRAME_HEADER
    assert f.size == 32
    assert {n: f.offset(n) for n in f.names} == {
        "length": 0, "msg_type": 4, "gen_time": 8, "trigger_time": 16, "source": 24, "dest": 28}
    assert f.dtype.itemsize == 32


def test_builtin_payloads():
    assert fmt.TICKER.size == 48 and fmt.TICKER.offset("last_price") == 16 and fmt.TICKER.offset("volume") == 40
    assert fmt.ORDER.size == 88
    assert [fmt.ORDER.offset(n) for n in ("order_id", "side", "order_type", "price", "client_order_id")] == [
        16, 24, 28, 32, 56]
    assert fmt.TRADE.size == 56


def test_format_md_carries_the_generated_tables():
    with open(os.path.join(ROOT, "FORMAT.md")) as fh:
        doc = fh.read()
    assert fmt.format_tables().strip() in doc, "run `python -m kftools.journal.format` and paste into FORMAT.md"


def test_page_naming():
    assert fmt.page_path("a/j.dat", 0) == "a/j.dat"
    assert fmt.page_path("a/j.dat", 3) == "a/j.dat.3"


def test_register_from_numpy_dtype_and_resolve():
    reg = TypeRegistry()
    mt = reg.register(100, "Quote", np.dtype([("symbol", "S16"), ("bid", "<f8"), ("n", "<u4")]))
    assert mt.layout.size == 28
    assert reg.resolve("quote") == 100 and reg.resolve("100") == 100 and reg.name(100) == "Quote"
    assert reg.name(999) == "type999"
    with pytest.raises(UnknownType, match="unknown message type 'nope'"):
        reg.resolve("nope")


@pytest.mark.parametrize("dtype, match", [
    (np.dtype([("a", ">f8")]), "not a supported scalar"),
    (np.dtype({"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 8]}), "must be packed"),
    (np.dtype([("gen_time", "<i8")]), "reserved"),
])
def test_register_rejects_bad_dtypes(dtype, match):
    with pytest.raises(SchemaError, match=match):
        TypeRegistry().register(100, "X", dtype)


def test_register_rejects_a_name_taken_by_another_id():
    with pytest.raises(SchemaError, match="already used by id 1"):
        TypeRegistry().register(100, "ticker", [("a", "u8")])


@pytest.mark.parametrize("text, match", [
    ("nonsense = [", "not a valid schema file"),
    ("[[types]]\nid = 5\nname = 'X'\n", "needs id, name and fields"),
    ("[[types]]\nid = 5\nname = 'X'\nfields = [{name='a', type='f128'}]\n", "unknown type 'f128'"),
    ("[[types]]\nid = 0\nname = 'X'\nfields = [{name='a', type='f8'}]\n", "unknown type|must be an integer"),
])
def test_bad_schema_files(tmp_path, text, match):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(SchemaError, match=match) as e:
        load_registry([str(p)])
    assert str(p) in str(e.value)


def test_schema_from_environment(tmp_path, monkeypatch):
    p = tmp_path / "s.json"
    p.write_text('{"types": [{"id": 300, "name": "Ping", "fields": [["seq", "u64"]]}]}')
    monkeypatch.setenv("KFTOOLS_SCHEMA", str(p))
    assert load_registry().get(300).name == "Ping"
