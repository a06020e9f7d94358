"""Every command answers "which journals does this path name?" alike (kftools.journal.resolve): the same journals,
the same labels, for a folder of kftools journals, a KF_HOME, a folder holding one Kungfu journal, and all of them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pyarrow.parquet as pq
import pytest
from kftest import KFTOOLS, ROOT, SAMPLES_DIR, copy_journal
from kungfu_writer import KungfuTestWriter
from typer.testing import CliRunner

from kftools.cli import app
from kftools.journal import yijinjing as kf
from kftools.journal.resolve import names_one, resolve_journals

STRATEGY = os.path.join("runtime", "strategy", "default", "demo", "journal", "live")
TD = os.path.join("runtime", "td", "sim", "acct1", "journal", "live")
S_LABEL, TD_LABEL = "strategy/default/demo/live/00000000", "td/sim/acct1/live/00000000"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> str:
    """kf/ (two kftools journals, one of nine pages), home/ (a KF_HOME of two Kungfu journals), one/ (a KF_HOME
    whose only journal is the strategy's, named by its journal/live folder)."""
    root = str(tmp_path_factory.mktemp("resolve"))
    os.mkdir(os.path.join(root, "kf"))
    for name in ("clean.dat", "multipage.dat"):
        copy_journal(os.path.join(SAMPLES_DIR, name), os.path.join(root, "kf"))
    for folder, n in ((os.path.join(root, "home", STRATEGY), 20), (os.path.join(root, "home", TD), 30)):
        w = KungfuTestWriter(folder, page_size=1 << 16)
        for i in range(n):
            w.write(kf.MsgType.Quote, bytes(kf.QUOTE.size), 1_700_000_000_000_000_000 + i)
        w.close()
    shutil.copytree(os.path.join(root, "home", STRATEGY), os.path.join(root, "one", STRATEGY))
    return root


def cli(*args) -> tuple[int, str]:
    res = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stdout


def kf_journals(root: str) -> list[str]:
    return [os.path.join(root, "kf", n) for n in ("clean.dat", "multipage.dat")]


def cases(root: str) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """name: (arguments, labels every command shows, first pages the monitor watches)."""
    kf = kf_journals(root)
    home = [os.path.join(root, "home", f, "00000000.1.journal") for f in (STRATEGY, TD)]
    one = os.path.join(root, "one", STRATEGY)
    return {
        "kftools folder": ([os.path.join(root, "kf")], kf, kf),
        "KF_HOME": ([os.path.join(root, "home")], [S_LABEL, TD_LABEL], home),
        "one Kungfu journal": ([one], [S_LABEL], [os.path.join(one, "00000000.1.journal")]),
        # two strategy journals of the same location and dest: told apart by the folders above them
        "mixed": ([os.path.join(root, "kf"), os.path.join(root, "home"), one],
                  [*kf, "home/runtime/" + S_LABEL, TD_LABEL, "one/runtime/" + S_LABEL],
                  [*kf, *home, os.path.join(one, "00000000.1.journal")]),
    }


@pytest.mark.parametrize("case", ["kftools folder", "KF_HOME", "one Kungfu journal", "mixed"])
def test_every_command_names_the_same_journals(tree, tmp_path, case):
    args, labels, firsts = cases(tree)[case]
    assert [r.label for r in resolve_journals(args)] == labels
    single = len(args) == 1 and names_one(args[0])
    assert single == (case == "one Kungfu journal")

    # archive first: the commands after it read the archived pages of the same journals
    code, out = cli("archive", *args, "--json")
    assert code == 0
    archived = {p.rpartition(".")[0].rpartition(".")[0] for p in json.loads(out)["pages"]}
    assert archived <= set(firsts)
    if firsts[0] in kf_journals(tree):  # archived here or by an earlier case
        assert os.path.exists(os.path.join(tree, "kf", "multipage.dat.1.zst"))

    code, out = cli("info", *args, "--json")
    assert code in (0, 3)
    info = json.loads(out)
    assert [j["path"] for j in info["journals"]] == labels
    frames = info["total"]["frames"]
    code, out = cli("verify", *args, "--json")
    assert [j["path"] for j in json.loads(out)["journals"]] == labels and json.loads(out)["total"]["frames"] == frames

    code, out = cli("cat", *args, "-F", "jsonl")
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == frames
    assert {r.get("journal") for r in rows} == ({None} if single else set(labels))

    code, out = cli("monitor", "--once", "--json", *args)
    assert code == 0 and sorted(j["journal"] for j in json.loads(out)["journals"]) == sorted(firsts)

    out_file = tmp_path / "all.parquet"
    code, _ = cli("export", *args, out_file)
    table = pq.read_table(out_file)
    assert table.num_rows == frames
    if single:
        assert "journal" not in table.column_names
    else:  # the journal column names ours by file name (as a dataset does), Kungfu's by label
        assert set(table.column("journal").to_pylist()) == {os.path.basename(x) if x.endswith(".dat") else x
                                                            for x in labels}

    # one journal replays without -o (to <path>.replay.dat), several need one output
    replay_out = [] if single else ["-o", tmp_path / "replayed.dat"]
    code, out = cli("replay", *args, "--max", "--json", *replay_out)
    assert code in (0, 3) and json.loads(out)["frames"] == frames
    if single:
        os.unlink(args[0] + ".replay.dat")
        os.unlink(args[0] + ".replay.dat.types")

    # tail --plain follows: read every frame's line, then Ctrl-C (a process each: the mixed case holds every kind)
    if case not in ("mixed", "one Kungfu journal"):
        return
    proc = subprocess.Popen([*KFTOOLS, "tail", "--plain", "-n", str(frames), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        lines = [proc.stdout.readline() for _ in range(frames)]  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert all(lines)
    if not single:
        assert {x.split()[1] for x in lines} == set(labels)
