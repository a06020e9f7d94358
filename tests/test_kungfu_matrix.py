"""Every read command on every Kungfu generation's sample (issue 27): info, cat, tail --plain, export, verify,
monitor --once, several journals merged, and replay, each compared with what the reader finds in the sample."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pyarrow.parquet as pq
import pytest
from kftest import CLEAN_SAMPLES, KFTOOLS, ROOT, wait_for
from typer.testing import CliRunner

import kftools
from kftools.cli import app

DATA = os.path.join(ROOT, "tests", "data", "kungfu")
#: generation -> (sample journal folder, pages, the sample's journal name)
SAMPLES = {
    "kungfu-2.4": ("kf_home/runtime/strategy/default/demo/journal/live", 1, "strategy/default/demo/live/00000000"),
    "kungfu-2.x-57": ("generations/kf_home/runtime/md/sim/feed/journal/live", 3, "md/sim/feed/live/00000000"),
    "kungfu-2.x-65": ("generations/kf_home/runtime/td/sim/acct2/journal/live", 2, "td/sim/acct2/live/00000000"),
    "kungfu-wire-v1": ("generations/kf_home/runtime/strategy/default/v4demo/journal/live", 2,
                       "strategy/default/v4demo/live/00000000"),
}
#: a kftools journal to merge each sample with
OURS = next(p for p in CLEAN_SAMPLES if os.path.basename(p) == "multipage.dat")


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res.stdout


@pytest.fixture(scope="module", params=list(SAMPLES))
def sample(request):
    """(generation, folder, pages, name, frames as the reader finds them: (msg_type, gen_time))."""
    folder, pages, name = SAMPLES[request.param]
    path = os.path.join(DATA, folder)
    with kftools.Reader(path) as r:
        assert r.pages.kungfu is not None and r.name == name
        frames = [(f.msg_type, f.gen_time) for f in r]
        assert r.damage is None
    return request.param, path, pages, name, frames


def test_info_and_verify(sample):
    _gen, path, pages, name, frames = sample
    j = json.loads(cli("info", path, "--json"))["journals"][0]
    assert (j["path"], j["frames"], j["pages"], j["health"]) == (name, len(frames), pages, "ok")
    assert "clean" in cli("verify", path)


def test_cat_text_jsonl_and_csv(sample):
    gen, path, _pages, name, frames = sample
    rows = [json.loads(x) for x in cli("cat", path, "-F", "jsonl").splitlines()]
    assert [(x["msg_type"], x["gen_time"]) for x in rows] == frames
    text = cli("cat", path).splitlines()
    assert len(text) == len(frames)  # a folder holding one Kungfu journal is that journal: no label column
    if gen == "kungfu-wire-v1":  # JSON frames as JSON text, in every format
        assert all("payload=" not in line and line.endswith("}") for line in text)
        assert all(json.loads(x["text"])["seq"] >= 0 for x in rows)
    assert len(cli("cat", path, "-F", "csv").splitlines()) == len(frames) + 1


def test_tail_plain_shows_the_last_frames_and_follows(sample):
    _gen, path, _pages, _name, frames = sample
    want = cli("cat", path).splitlines()[-5:]
    lines: list[str] = []
    proc = subprocess.Popen([*KFTOOLS, "tail", "--plain", "-n", "5", path], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: len(lines) >= 5 or proc.poll() is not None, "tail's first 5 lines")
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=30)
    assert [x.rstrip("\n") for x in lines] == want


def test_export(sample, tmp_path):
    _gen, path, _pages, _name, frames = sample
    cli("export", path, tmp_path / "x.parquet")
    t = pq.read_table(tmp_path / "x.parquet", columns=["msg_type", "gen_time"])
    assert list(zip(t.column("msg_type").to_pylist(), t.column("gen_time").cast("int64").to_pylist(),
                    strict=True)) == frames


def test_monitor_once(sample):
    _gen, path, pages, _name, frames = sample
    doc = json.loads(cli("monitor", path, "--once", "--json"))
    j = doc["journals"][0]
    assert doc["ok"] and (j["frames_total"], j["pages"], j["damage"]) == (len(frames), pages, None)


def test_merged_with_a_kftools_journal(sample):
    _gen, path, _pages, name, frames = sample
    rows = [json.loads(x) for x in cli("cat", path, OURS, "-F", "jsonl").splitlines()]
    with kftools.Reader(OURS) as r:
        ours = r.count()
    assert len(rows) == len(frames) + ours
    assert [x["gen_time"] for x in rows] == sorted(x["gen_time"] for x in rows)
    assert [(x["msg_type"], x["gen_time"]) for x in rows if x["journal"] == name] == frames


def test_replay(sample, tmp_path):
    _gen, path, _pages, _name, frames = sample
    out = str(tmp_path / "r.dat")
    cli("replay", path, "--max", "-o", out)
    with kftools.Reader(out) as r:
        assert [(f.msg_type, f.trigger_time) for f in r] == frames  # the recording's time kept as trigger_time
