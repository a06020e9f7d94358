"""One rendering rule: labels and unset times from the layout declaration, in every output; the C line
programs and their Python twin byte-identical to render.py's per-frame functions."""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kftest import run_cli

import kftools
from kftools import linefmt
from kftools.journal.format import (
    BUILTIN_LAYOUTS,
    FILL,
    ORDER_UPDATE,
    Liquidity,
    MsgType,
    OrderStatus,
    Side,
)
from kftools.journal.layout import Field, Layout, display_name
from kftools.journal.schemas import load_registry
from kftools.render import CsvWriter, csv_columns, json_line, label_array, text_line

IMPLS = sorted(linefmt.IMPLEMENTATIONS)
ODD = Layout("Odd", [
    Field("flag", "bool"), Field("tiny", "i8"), Field("byte", "u8"), Field("short", "u16"), Field("word", "u32"),
    Field("big", "u64"), Field("neg", "i32"), Field("wide", "i64"), Field("single", "f32"), Field("double", "f64"),
    Field("name", "char[8]"), Field("vec", "f64[3]"), Field("pair", "u32[2]"), Field("side", "u32", labels=Side),
    Field("when", "i64", zero_is_unset=True), Field("reserved", "u32"),
])
CLASH = Layout("Clash", [Field("journal", "u32"), Field("x", "f64")])  # a key the per-frame rule must render


def registry():
    reg = load_registry()
    reg.register(200, "Odd", ODD)
    reg.register(201, "Clash", CLASH)
    reg.register(202, "Empty", Layout("Empty", []))
    return reg


REG = registry()
LAYOUTS = {**{int(t): lay for t, lay in BUILTIN_LAYOUTS.items()}, 200: ODD, 201: CLASH, 202: REG.get(202).layout}

_INTS = {"i8": (-128, 127), "u8": (0, 255), "u16": (0, 65535), "u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1),
         "i32": (-(2**31), 2**31 - 1), "i64": (-(2**63), 2**63 - 1)}
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-4, 9.999e-5, 1e15, 1e16, 1e22, 5e-324, 1.7976931348623157e308, 0.1 + 0.2,
                     100.8162, 99.96000000000001, 123456789012345.6, -2.5, 1 / 3]),
    st.decimals(places=4, min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).map(float),
)
TEXT = st.one_of(
    st.text(max_size=12).map(lambda s: s.encode()),
    st.binary(max_size=12),
    st.sampled_from([b'q"uote', b"a,b", b"line\nbreak", b"cr\r", b"tab\t\\", "é€😀".encode(), b"\xff\xfe", b"\x7f"]),
)


def field_bytes(f: Field):
    """A strategy for the stored bytes of one field."""
    if f.is_text:
        return TEXT.map(lambda b: b[: f.size].ljust(f.size, b"\0"))
    code = f.struct_code[-1]
    if f.scalar == "f32":
        return st.lists(FLOATS, min_size=f.count, max_size=f.count).map(lambda vs: b"".join(map(_f32, vs)))
    if f.scalar == "f64":
        one = FLOATS
    elif f.scalar == "bool":
        one = st.booleans()
    elif f.labels is not None:
        one = st.integers(0, max(int(m) for m in f.labels) + 3)  # every value, and some without a name
    else:
        lo, hi = _INTS[f.scalar]
        one = st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0]))
    return st.lists(one, min_size=f.count, max_size=f.count).map(lambda vs: struct.pack(f"<{f.count}{code}", *vs))


def _f32(x: float) -> bytes:
    try:
        return struct.pack("<f", x)
    except OverflowError:
        return struct.pack("<f", math.copysign(math.inf, x))


def payload(layout: Layout):
    return st.tuples(*[field_bytes(f) for f in layout.fields]).map(b"".join) if layout.fields else st.just(b"")


# every time a frame can hold (ns since the epoch as i64: years 1677..2262)
GEN_TIME = st.one_of(st.integers(0, 2**62), st.integers(-(2**63), 2**63 - 1), st.sampled_from([-1, -(10**9) - 1]))
FRAME = st.one_of([st.tuples(st.just(t), payload(LAYOUTS[t]), GEN_TIME,
                             st.one_of(st.just(0), st.integers(-(2**63), 2**63 - 1)),
                             st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)) for t in sorted(LAYOUTS)])
FRAMES = st.lists(st.one_of(FRAME, st.tuples(st.just(777), st.binary(max_size=40), GEN_TIME, st.just(5),
                                             st.just(1), st.just(2))), min_size=1, max_size=25)


def reference(frames, fmt: str, journal: bool, reg) -> bytes:
    if fmt == "jsonl":
        line = lambda f: json_line(f, journal=journal)  # noqa: E731
    elif fmt == "csv":
        line = CsvWriter(io.StringIO(), csv_columns(reg, journal=journal), journal=journal).line
    else:
        line = lambda f: text_line(f, journal=journal)  # noqa: E731
    return "".join(line(f) + "\n" for f in frames).encode()


def check_all_ways(frames, reg) -> None:
    """Write ``frames``, then every format, with and without the journal column, by every implementation,
    in batches of 7: the bytes of the per-frame rule."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "j.dat")
        with kftools.Writer(path, registry=reg) as w:
            for t, p, gen, trig, src, dst in frames:
                w.write(t, p, gen_time=gen, trigger_time=trig, source=src, dest=dst)
        with kftools.Reader(path, registry=reg) as r:
            batches = list(r.batches(batch_size=7))
            ordered = list(r.frames())
            for fmt in ("text", "jsonl", "csv"):
                for journal in (False, True):
                    want = reference(ordered, fmt, journal, reg)
                    cols = csv_columns(reg, journal=journal)
                    for impl in IMPLS:
                        lr = linefmt.LineRenderer(fmt, journal=journal, columns=cols, implementation=impl)
                        got = b"".join(lr.batch(b) for b in batches)
                        assert got == want, (impl, fmt, journal)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=FRAMES)
def test_line_programs_match_the_per_frame_rule_byte_for_byte(frames):
    """Every layout, every enum value and some without a name, NaN/inf/-0.0/huge/tiny floats, unset times,
    text with quotes, separators, control characters, unicode and bad UTF-8, times before 1970,
    unknown types, a type with no fields and one with a field named like a header key."""
    check_all_ways(frames, REG)


KUNGFU = load_registry(["kungfu"])
KUNGFU_FRAMES = st.lists(st.one_of([st.tuples(st.just(mt.id), payload(mt.layout), GEN_TIME, st.just(0),
                                              st.just(1), st.just(0)) for mt in KUNGFU.types()]
                                   + [st.tuples(st.just(777), st.binary(max_size=40), GEN_TIME, st.just(0),
                                                st.just(1), st.just(0))]), min_size=1, max_size=12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=KUNGFU_FRAMES)
def test_line_programs_match_the_per_frame_rule_for_kungfu_layouts(frames):
    """Kungfu's layouts (their own enum spellings, arrays, many text fields); its unknown frames, which may be
    JSON text, come from the per-frame rule."""
    check_all_ways(frames, KUNGFU)


@pytest.mark.skipif("c" not in linefmt.IMPLEMENTATIONS, reason="the C extension is not built")
@settings(max_examples=600, deadline=None)
@given(x=st.one_of(st.floats(allow_nan=True, allow_infinity=True), FLOATS))
def test_c_floats_are_python_repr(x):
    from kftools import _format

    assert _format.format_double(x) == repr(x)
    assert _format.format_double(x, 1) == json.dumps(x)


def test_every_enum_field_is_labelled_in_the_declaration():
    enums = {"side", "order_type", "status", "reject_reason", "liquidity"}
    for layout in BUILTIN_LAYOUTS.values():
        for f in layout.fields:
            assert (f.labels is not None) == (f.name in enums), (layout.name, f.name)
    assert OrderStatus.PARTIALLY_FILLED.label == "partially_filled" == display_name(OrderStatus(1))
    assert Side.from_label("SELL") is Side.SELL and Liquidity.from_label(1) is Liquidity.TAKER


def test_label_array_is_what_parquet_carries():
    arr = label_array(OrderStatus, [2, 0, 42, 2])
    assert arr.to_pylist() == ["filled", "accepted", "42", "filled"]
    assert arr.indices.to_pylist()[:2] == [2, 0]  # a named value's index is its value


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    """A journal of the exchange's answers: updates with every status, fills, an unknown status, unset times."""
    path = str(tmp_path_factory.mktemp("render") / "answers.dat")
    with kftools.Writer(path) as w:
        for s in [*OrderStatus, 42]:
            w.write(MsgType.ORDER_UPDATE, ORDER_UPDATE.struct.pack(b"ABC", 7, int(s), 0, 1, 2, 10.5, 3.0, 1.0, 2.0,
                                                                    10.25), trigger_time=0 if s else 5)
        w.write(MsgType.FILL, FILL.struct.pack(b"ABC", 1, 7, 0, 1, 10.5, 1.0, 0.01, 0, 0), trigger_time=9)
    return path


def test_cat_names_update_and_fill_values_and_nulls_unset_times(exchange):
    res = run_cli("cat", exchange, "-F", "jsonl")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r["status"] for r in rows[:-1]] == [display_name(s) for s in OrderStatus] + [42]
    assert (rows[1]["side"], rows[1]["order_type"], rows[1]["reject_reason"]) == ("sell", "limit_ioc", "none")
    assert rows[0]["trigger_time"] == 5 and rows[1]["trigger_time"] is None
    assert (rows[-1]["side"], rows[-1]["liquidity"]) == ("buy", "taker")
    csv_rows = run_cli("cat", exchange, "-F", "csv").stdout.splitlines()
    head = csv_rows[0].split(",")
    second = csv_rows[2].split(",")
    assert second[head.index("trigger_time")] == "" and second[head.index("status")] == "partially_filled"
    text = run_cli("cat", exchange).stdout
    assert "status=partially_filled" in text and "liquidity=taker" in text and "status=42" in text


def test_parquet_labels_every_enum_column_and_import_round_trips(exchange, tmp_path):
    out = tmp_path / "a.parquet"
    assert run_cli("export", exchange, out, "--quiet").returncode == 0
    t = pq.read_table(out)
    assert "OrderUpdate.side" not in t.column_names and "Fill.side" not in t.column_names
    for col in ("status", "side", "order_type", "reject_reason", "liquidity"):
        assert str(t.schema.field(col).type) == "dictionary<values=string, indices=int32, ordered=0>", col
    assert t.column("status").to_pylist()[-2:] == ["42", None]
    back = tmp_path / "back.dat"
    res = run_cli("import", out, back)
    assert res.returncode == 0, res.stderr
    with kftools.Reader(exchange) as a, kftools.Reader(str(back)) as b:
        assert [f.raw for f in a] == [f.raw for f in b]


@pytest.mark.parametrize("fmt", ["text", "jsonl", "csv"])
def test_cat_prints_the_per_frame_rule_to_a_byte_stream_and_a_text_one(fmt):
    """cat's batch path through a UTF-8 stream's buffer and through a plain text stream, one journal and several
    (each line naming its journal): the bytes the per-frame rule gives."""
    from kftest import SAMPLES_DIR

    from kftools.cat import cat
    from kftools.journal.merge import MergedReader, open_journals

    for paths in ([os.path.join(SAMPLES_DIR, "engine.dat")],
                  [os.path.join(SAMPLES_DIR, "engine.dat"), os.path.join(SAMPLES_DIR, "multipage.dat")]):
        reg = load_registry()
        with open_journals(paths, registry=reg) as r:
            many = isinstance(r, MergedReader)
            frames = list(r.frames())
            # (the csv module ends the header with \r\n, the rows with \n, as cat always has)
            header = ",".join(csv_columns(reg, journal=many)) + "\r\n" if fmt == "csv" else ""
            want = header.encode() + reference(frames, fmt, many, reg)
        raw = io.BytesIO()
        binary = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        assert cat(paths, registry=load_registry(), out=binary, fmt=fmt).frames == len(frames)
        binary.flush()
        text = io.StringIO()
        cat(paths, registry=load_registry(), out=text, fmt=fmt)
        assert raw.getvalue() == want and text.getvalue().encode() == want
