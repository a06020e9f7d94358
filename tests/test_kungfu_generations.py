"""Every Kungfu journal generation (issue 27): detection, the golden wire-v1 bytes, the samples against their
manifests, generated journals of each generation, and a KF_HOME holding all of them at once."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct

import pytest
from kftest import ROOT, run_cli
from kungfu_writer import KungfuTestWriter, pack

import kftools
from kftools.journal import yijinjing as kf

DATA = os.path.join(ROOT, "tests", "data", "kungfu")
GEN_HOME = os.path.join(DATA, "generations", "kf_home")
GOLDEN = os.path.join(DATA, "journal-wire-v1.golden.json")
#: journal name -> (folder, manifest, generation)
SAMPLES = {
    "md/sim/feed/live/00000000": ("md/sim/feed/journal/live", "md-sim-feed", kf.KUNGFU_2_X_57),
    "td/sim/acct2/live/00000000": ("td/sim/acct2/journal/live", "td-sim-acct2", kf.KUNGFU_2_X_65),
    "strategy/default/v4demo/live/00000000": ("strategy/default/v4demo/journal/live", "strategy-default-v4demo",
                                              kf.KUNGFU_WIRE_V1),
}
PRICE = {int(kf.LaterMsgType.Quote): "last_price", int(kf.LaterMsgType.Order): "limit_price"}


def manifest(stem: str) -> list[dict]:
    with open(os.path.join(DATA, "generations", f"{stem}.manifest.jsonl")) as fh:
        return [json.loads(line) for line in fh]


# -- journal wire v1: the golden bytes -------------------------------------------------------------------------


def test_wire_v1_layouts_give_exactly_the_golden_bytes():
    with open(GOLDEN) as fh:
        g = json.load(fh)
    page, frame = bytes.fromhex(g["page_header_hex"]), bytes.fromhex(g["first_frame_header_hex"])
    assert (kf.WIRE_V1_PAGE_HEADER.size, kf.WIRE_V1_FRAME_HEADER.size) == (g["page_header_size"], g["frame_header_size"])
    assert kf.WIRE_V1_PAGE_HEADER.offset("last_frame_position") == g["page_last_frame_position_offset"]
    assert kf.WIRE_V1_FRAME_HEADER.offset("length") == 0 and kf.WIRE_V1_EPOCH == g["journal_format_epoch"]
    values = {("msg_type" if k == "carrier_type" else k): v for k, v in g["first_frame"].items()}
    assert pack(kf.WIRE_V1_FRAME_HEADER, **values) == frame
    assert pack(kf.WIRE_V1_PAGE_HEADER, **g["page_header"]) == page
    got = kf.WIRE_V1_FRAME_HEADER.unpack(frame)
    assert {k: got[k] for k in values} == values
    got = kf.WIRE_V1_PAGE_HEADER.unpack(page)
    assert {k: got[k] for k in g["page_header"]} == g["page_header"]
    assert kf.generation_of("x", page) is kf.KUNGFU_WIRE_V1


def test_each_generation_is_told_by_its_page_header():
    for gen in kf.GENERATIONS:
        head = pack(gen.fmt.page_header, version=gen.version, page_header_length=gen.fmt.page_header.size,
                    page_size=1 << 20, frame_header_length=gen.fmt.frame_header.size)
        assert kf.generation_of("x", head) is gen
    assert kf.generation_of("x", bytes(64)) is None


# -- the samples -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_every_generation_sample_frame_matches_its_manifest(name):
    folder, stem, gen = SAMPLES[name]
    want = manifest(stem)
    with kftools.Reader(os.path.join(GEN_HOME, "runtime", folder)) as r:
        assert r.name == name and r.pages.fmt is gen.fmt
        got = list(r)
        assert r.damage is None
    assert len(got) == len(want)
    for f, m in zip(got, want, strict=True):
        assert (f.page_index, f.offset, f.msg_type, f.gen_time) == (m["page"], m["offset"], m["msg_type"], m["gen_time"])
        if "json" in m:
            assert json.loads(f.payload.rstrip(b"\0")) == m["json"]
        elif "instrument_id" in m:
            fields = f.fields
            assert fields["instrument_id"] == m["instrument_id"] and fields["volume"] == m["volume"]
            assert fields[PRICE.get(m["msg_type"], "price")] == m["price"]
        else:
            assert f.type_name == "SessionStart"


def test_the_samples_span_pages_and_the_crashed_one_ends_at_its_half_written_frame():
    assert max(m["page"] for m in manifest("md-sim-feed")) == 3
    assert max(m["page"] for m in manifest("strategy-default-v4demo")) == 2
    crashed = os.path.join(GEN_HOME, "runtime", "td", "sim", "acct2", "journal", "live")
    last = manifest("td-sim-acct2")[-1]
    page = os.path.join(crashed, f"00000000.{last['page']}.journal")
    with open(page, "rb") as fh:
        data = fh.read()
    after = last["offset"] + struct.unpack_from("<I", data, last["offset"])[0]
    # a header with length 0 and a msg_type, mid-page: where the writer died
    assert struct.unpack_from("<Ii", data, after)[0] == 0 and struct.unpack_from("<i", data, after + 24)[0] > 0
    r = run_cli("verify", os.path.join(crashed, "00000000.1.journal"))
    assert r.returncode == 0 and "301 valid frame(s)" in r.stdout, r.stdout + r.stderr


# -- generated journals of every generation --------------------------------------------------------------------


@pytest.mark.parametrize("gen", kf.GENERATIONS[1:], ids=lambda g: g.name)
def test_generated_journals_of_every_generation_read_back(tmp_path, gen):
    rng = random.Random(7)
    w = KungfuTestWriter(str(tmp_path / "j" / "live"), page_size=16 << 10, generation=gen)
    t = 1_700_000_000_000_000_000
    for _ in range(300):
        t += rng.randrange(1, 1000)
        mt = rng.choice([int(x) for x in kf.LATER_LAYOUTS] + [777])
        layout = kf.LATER_LAYOUTS.get(mt)  # type: ignore[call-overload]
        data = rng.randbytes(layout.size if layout is not None else rng.randrange(0, 300))
        w.write(mt, data, t, trigger_time=t - 5, dest=rng.choice([0, 7]))
    w.write_half(777, b"half")
    w.close()
    assert w.page_id > 2
    with kftools.Reader(str(tmp_path / "j" / "live")) as r:
        got = list(r)
        assert r.damage is None
    assert [(f.page_index, f.offset, f.msg_type, f.gen_time, f.trigger_time, f.dest, bytes(f.payload))
            for f in got] == [(x["page"], x["offset"], x["msg_type"], x["gen_time"], x["trigger_time"], x["dest"],
                               x["payload"]) for x in w.written]


def test_a_later_page_of_another_generation_is_damage_not_misread(tmp_path):
    w = KungfuTestWriter(str(tmp_path / "live"), page_size=16 << 10, generation=kf.KUNGFU_2_X_65)
    for i in range(200):
        w.write(int(kf.LaterMsgType.Quote), bytes(kf.LATER_LAYOUTS[kf.LaterMsgType.Quote].size), 1_700_000_000 + i)
    w.close()
    with open(w.journal.page_path(2), "r+b") as fh:  # page 2 now says 57-byte frame headers
        fh.seek(kf.PAGE_HEADER.offset("frame_header_length"))
        fh.write(struct.pack("<I", 57))
    r = run_cli("verify", str(tmp_path / "live"))
    assert r.returncode == 3 and "kungfu-2.x-57 page in a kungfu-2.x-65 journal" in r.stdout + r.stderr


# -- a KF_HOME holding every generation at once ----------------------------------------------------------------


@pytest.fixture(scope="module")
def all_home(tmp_path_factory) -> str:
    """Kungfu 2.4's samples and every later generation's under one KF_HOME."""
    home = str(tmp_path_factory.mktemp("all") / "kf_home")
    shutil.copytree(os.path.join(DATA, "kf_home"), home)
    shutil.copytree(os.path.join(GEN_HOME, "runtime"), os.path.join(home, "runtime"), dirs_exist_ok=True)
    return home


ALL = {"td/sim/acct1/live/00000000": 5001, "strategy/default/demo/live/00000000": 801,
       **{n: len(manifest(s)) for n, (_f, s, _g) in SAMPLES.items()}}


def test_info_is_one_table_and_verify_clean_over_every_generation(all_home):
    r = run_cli("info", all_home, "--json")
    assert r.returncode == 0, r.stderr
    assert {j["path"]: j["frames"] for j in json.loads(r.stdout)["journals"]} == ALL
    r = run_cli("info", all_home)
    assert r.returncode == 0 and "total: 5 journals" in r.stdout and f"{sum(ALL.values()):,}" in r.stdout
    r = run_cli("verify", all_home)
    assert r.returncode == 0 and r.stdout.count("clean") >= 5, r.stdout + r.stderr


def test_cat_is_one_timeline_over_every_generation(all_home):
    r = run_cli("cat", all_home, "-F", "jsonl")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == sum(ALL.values())
    assert [x["gen_time"] for x in rows] == sorted(x["gen_time"] for x in rows)
    by = {(x["journal"], x["type"]) for x in rows}
    assert ("md/sim/feed/live/00000000", "Quote") in by and ("td/sim/acct1/live/00000000", "Order") in by
    v4 = [x for x in rows if x["journal"] == "strategy/default/v4demo/live/00000000"]
    assert all(json.loads(x["text"])["seq"] >= 0 for x in v4)  # JSON frames as JSON text
    r = run_cli("cat", all_home, "-F", "jsonl", "--symbol", "rb2405")
    assert r.returncode == 0 and {json.loads(x)["journal"] for x in r.stdout.splitlines()} >= {
        "td/sim/acct1/live/00000000", "md/sim/feed/live/00000000", "td/sim/acct2/live/00000000"}


def test_export_over_every_generation_keeps_each_generation_s_types(all_home, tmp_path):
    import pyarrow.parquet as pq

    out = str(tmp_path / "all.parquet")
    r = run_cli("export", all_home, out)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.num_rows == sum(ALL.values())
    rows = t.select(["journal", "type", "msg_type"]).to_pylist()
    # 203 is Order in Kungfu 2.4 and Trade later: each journal's generation names it
    assert {(x["type"], x["msg_type"]) for x in rows if x["journal"] == "td/sim/acct1/live/00000000"} >= {("Order", 203)}
    assert {(x["type"], x["msg_type"]) for x in rows if x["journal"] == "md/sim/feed/live/00000000"} >= {("Trade", 203)}
    r = run_cli("export", all_home, str(tmp_path / "ds"))
    assert r.returncode == 0 and f"{sum(ALL.values()):,} rows" in r.stdout + r.stderr, r.stdout + r.stderr


def test_replay_of_a_later_generation_keeps_every_payload(tmp_path):
    folder, stem, _gen = SAMPLES["md/sim/feed/live/00000000"]
    out = str(tmp_path / "feed.replay.dat")
    r = run_cli("replay", os.path.join(GEN_HOME, "runtime", folder), "--max", "-o", out)
    assert r.returncode == 0, r.stderr
    with kftools.Reader(out) as rd:
        got = [(f.msg_type, f.trigger_time) for f in rd]
    assert got == [(m["msg_type"], m["gen_time"]) for m in manifest(stem)]


def test_monitor_counts_every_journal_of_every_generation(all_home):
    r = run_cli("monitor", all_home, "--once", "--json")
    assert r.returncode == 0, r.stderr
    got = {j["journal"].split("runtime/")[1].split("/journal/")[0]: (j["frames_total"], j["damage"])
           for j in json.loads(r.stdout)["journals"]}
    assert got == {"/".join(n.split("/")[:3]): (count, None) for n, count in ALL.items()}


def test_docs_kungfu_md_carries_the_declared_layouts():
    with open(os.path.join(ROOT, "docs", "kungfu.md")) as fh:
        assert kf.layout_tables() in fh.read()


def test_the_later_runtime_layout_is_named_by_location_too(tmp_path):
    """Later 2.x releases keep journals in runtime/journal/{category}/{group}/{name}/{mode}."""
    folder, _stem, _gen = SAMPLES["td/sim/acct2/live/00000000"]
    dst = tmp_path / "kf_home" / "runtime" / "journal" / "td" / "sim" / "acct2" / "live"
    shutil.copytree(os.path.join(GEN_HOME, "runtime", folder), dst)
    r = run_cli("info", str(tmp_path / "kf_home"), "--json")
    assert r.returncode == 0 and [j["path"] for j in json.loads(r.stdout)["journals"]] == ["td/sim/acct2/live/00000000"]


def test_a_type_name_is_resolved_in_each_journal_s_own_generation(all_home, tmp_path):
    """``--type Trade`` over 2.4 and later journals: 204 in the first, 203 in the others (not the first journal's
    number everywhere, which selected the 2.4 journals' Orders)."""
    import pyarrow.dataset as ds

    want = {"td/sim/acct1/live/00000000": 204, "strategy/default/demo/live/00000000": 204,
            "md/sim/feed/live/00000000": 203, "td/sim/acct2/live/00000000": 203}
    r = run_cli("cat", all_home, "-F", "jsonl", "--type", "Trade")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert {(x["journal"], x["type"], x["msg_type"]) for x in rows} == {(j, "Trade", t) for j, t in want.items()}
    r = run_cli("export", all_home, str(tmp_path / "ds"), "--type", "trade")
    assert r.returncode == 0, r.stderr
    got = ds.dataset(str(tmp_path / "ds"), partitioning="hive").to_table().select(["journal", "type", "msg_type"])
    assert {(x["journal"], x["type"], x["msg_type"]) for x in got.to_pylist()} == {
        (j, "Trade", t) for j, t in want.items()}
    assert got.num_rows == len(rows)
    r = run_cli("cat", all_home, "--type", "Nope")
    assert r.returncode == 2 and "unknown message type 'Nope'" in r.stderr


# -- a wire-v1 page made ahead of time (PreOpen) -----------------------------------------------------------------


def test_a_follower_stays_on_the_page_being_written_while_the_next_is_made_ahead(tmp_path):
    """Kungfu v4 makes its next page ahead of time (status PreOpen): ``tail --plain`` reads the frames still written
    to the current page (it waited on the made page and showed none of them), then follows into the next page once
    the writer begins it; ``info``, ``verify`` and ``monitor`` count the made page as no page yet."""
    import subprocess
    import threading

    from kftest import KFTOOLS, wait_for

    folder = str(tmp_path / "strategy" / "default" / "ahead" / "journal" / "live")
    w = KungfuTestWriter(folder, page_size=8 << 10, generation=kf.KUNGFU_WIRE_V1)
    t = 1_700_000_000_000_000_000
    for i in range(3):
        w.write(777, b"%08d" % i, t + i)
    w.preopen()
    lines: list[str] = []
    proc = subprocess.Popen([*KFTOOLS, "tail", "--plain", "-n", "100", folder], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    try:
        wait_for(lambda: len(lines) >= 3, "the first 3 frames")
        for i in range(3, 13):  # a frame at a time: the follower is caught up (and waited on page 2) before each
            w.write(777, b"%08d" % i, t + i)
            wait_for(lambda i=i: len(lines) > i, f"frame {i} on page 1 while page 2 is made ahead")
        for r in (run_cli("info", folder, "--json"), run_cli("verify", folder, "--json")):
            assert r.returncode == 0, r.stderr
        assert json.loads(run_cli("info", folder, "--json").stdout)["journals"][0]["pages"] == 1
        r = run_cli("verify", folder)
        assert r.returncode == 0 and "clean" in r.stdout, r.stdout + r.stderr
        r = run_cli("monitor", folder, "--once")
        assert r.returncode == 0, r.stdout + r.stderr
        n = 13
        while w.page_id == 1:  # into the made page
            w.write(777, b"%08d" % n, t + n)
            n += 1
        wait_for(lambda: len(lines) >= n, f"all {n} frames, across the page the writer made ahead")
        assert json.loads(run_cli("info", folder, "--json").stdout)["journals"][0]["pages"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        w.close()
    assert len(lines) == n


def test_reader_follow_batches_reads_the_current_page_while_the_next_is_made_ahead(tmp_path):
    """The library follower (``Reader.follow_batches``) waited on the made-ahead page and read none of the frames
    written to the current page meanwhile (3 of 103 frames, measured before the fix)."""
    import threading

    from kftest import wait_for

    w = KungfuTestWriter(str(tmp_path / "live"), page_size=8 << 10, generation=kf.KUNGFU_WIRE_V1)
    t = 1_700_000_000_000_000_000
    w.write(777, b"%08d" % 0, t)
    w.preopen()
    got: list[int] = []
    caught_up = threading.Event()
    stop = threading.Event()

    def follow() -> None:
        with kftools.Reader(str(tmp_path / "live")) as r:
            for b in r.follow_batches("beginning", stop=stop):
                got.extend(b.headers["gen_time"].tolist())
                if not len(b):
                    caught_up.set()

    th = threading.Thread(target=follow)
    th.start()
    try:
        n = 1
        for _ in range(10):  # a frame at a time, each after the follower caught up
            wait_for(caught_up.is_set, "the follower to catch up", timeout=20)
            caught_up.clear()
            w.write(777, b"%08d" % n, t + n)
            n += 1
            wait_for(lambda n=n: len(got) == n, f"frame {n - 1} on page 1", timeout=20)
        while w.page_id == 1:
            w.write(777, b"%08d" % n, t + n)
            n += 1
        wait_for(lambda n=n: len(got) == n, f"all {n} frames across the made-ahead page", timeout=20)
    finally:
        stop.set()
        th.join(timeout=30)
        w.close()
    assert got == [t + i for i in range(n)]
