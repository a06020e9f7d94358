"""Outputs: no command destroys what it was not asked to write (issue 12 §2).

Every command that writes a file gets the same bad outputs: a symlink (live or
dangling), a FIFO, a name that is or would become a page of the input. Each is
refused with one line and exit 2, and nothing in the folder changes.
"""

from __future__ import annotations

import os
import stat

import pytest
from kftest import SAMPLES_DIR, copy_journal, run_cli

import kftools
from kftools.errors import OutputError
from kftools.journal.format import page_path
from kftools.outputs import create_temporary, remove_stale_temporaries

MULTI = os.path.join(SAMPLES_DIR, "multipage.dat")

# (command line with {src} and {out}); every one writes {out}
WRITERS = {
    "export": ["export", "{src}", "{out}"],
    "export --split": ["export", "{src}", "{out}", "--split"],
    "replay": ["replay", "{src}", "--max", "-o", "{out}"],
    "recover": ["recover", "{src}", "-o", "{out}"],
    "simulate": ["simulate", "{out}", "--frames", "10", "--rate", "0"],
}


def snapshot(folder) -> dict:
    """Every entry of ``folder``: (kind, size, target or content) — what a refused command must not change."""
    out = {}
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            out[name] = ("link", os.readlink(p))
        elif stat.S_ISREG(st.st_mode):
            with open(p, "rb") as fh:
                out[name] = ("file", fh.read())
        else:
            out[name] = (stat.S_IFMT(st.st_mode), 0)
    return out


def run_refused(tmp_path, cmd: str, out: str, *extra: str, src: str | None = None):
    args = [a.format(src=src or "", out=out) for a in WRITERS[cmd]]
    before = snapshot(tmp_path)
    r = run_cli(*args, *extra)
    assert r.returncode == 2, (cmd, r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("kftools: error: "), r.stderr
    assert snapshot(tmp_path) == before, "a refused command changed the folder"
    return r


@pytest.fixture
def src(tmp_path):
    return copy_journal(MULTI, str(tmp_path))


@pytest.mark.parametrize("cmd", sorted(WRITERS))
def test_symlinked_output_is_refused_and_its_target_kept(tmp_path, src, cmd):
    target = tmp_path / "precious.txt"
    target.write_bytes(b"keep me")
    (tmp_path / "link").symlink_to(target)
    for extra in ([], ["--force"] if cmd != "simulate" else ["--append"]):
        r = run_refused(tmp_path, cmd, str(tmp_path / "link"), *extra, src=src)
        assert "symbolic link" in r.stderr
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize("cmd", sorted(WRITERS))
def test_dangling_symlink_is_never_written_through(tmp_path, src, cmd):
    (tmp_path / "dangling").symlink_to(tmp_path / "created-through-the-link")
    run_refused(tmp_path, cmd, str(tmp_path / "dangling"), src=src)
    assert not (tmp_path / "created-through-the-link").exists()


@pytest.mark.parametrize("cmd", [c for c in sorted(WRITERS) if c != "export --split"])
def test_fifo_output_is_refused_even_with_force(tmp_path, src, cmd):
    os.mkfifo(tmp_path / "fifo")
    extra = ["--force"] if cmd != "simulate" else []
    r = run_refused(tmp_path, cmd, str(tmp_path / "fifo"), *extra, src=src)
    assert "FIFO" in r.stderr
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)


def test_device_output_is_refused_even_with_force(tmp_path, src):
    before = os.lstat("/dev/null")
    r = run_cli("export", src, "/dev/null", "--force")
    assert r.returncode == 2 and "device" in r.stderr
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode) and os.lstat("/dev/null").st_ino == before.st_ino


@pytest.mark.parametrize("cmd", [c for c in sorted(WRITERS) if c != "simulate"])
@pytest.mark.parametrize("page", [1, 3, 9])  # multipage.dat has pages 1..3; page 9 does not exist yet
def test_a_page_of_the_input_is_never_an_output(tmp_path, src, cmd, page):
    out = page_path(src, page)
    run_refused(tmp_path, cmd, out, "--force", src=src)
    assert kftools.verify(src).clean


def test_an_output_whose_pages_would_land_on_the_input_is_refused(tmp_path):
    # input x.dat.1 is page 1 of an output x.dat: writing x.dat would adopt or overwrite it
    src = copy_journal(os.path.join(SAMPLES_DIR, "clean.dat"), str(tmp_path), "x.dat.1")
    run_refused(tmp_path, "replay", str(tmp_path / "x.dat"), src=src)


def test_export_split_force_onto_a_symlinked_folder(tmp_path, src):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.parquet").write_bytes(b"x")
    (tmp_path / "linked").symlink_to(real)
    r = run_refused(tmp_path, "export --split", str(tmp_path / "linked"), "--force", src=src)
    assert "symbolic link" in r.stderr and "Traceback" not in r.stderr
    assert (real / "keep.parquet").read_bytes() == b"x"


def test_temporaries_are_exclusive_private_and_cleaned_only_when_provably_ours(tmp_path):
    out = str(tmp_path / "o.parquet")
    fd, name = create_temporary(out)
    os.close(fd)
    st = os.lstat(name)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert os.path.dirname(name) == str(tmp_path) and os.path.basename(name).startswith(".o.parquet.kftmp-")
    # a leftover of a dead kftools process (pid 2**22 + 1 is above pid_max's default): removed
    dead = tmp_path / f".o.parquet.kftmp-{2**22 + 1}-abc123"
    dead.write_bytes(b"partial")
    dead_dir = tmp_path / f".o.parquet.kftmp-{2**22 + 1}-dir999"
    dead_dir.mkdir()
    (dead_dir / "page").write_bytes(b"x")
    # never: a live process's temporary, another output's, a user's file, a link
    live = tmp_path / f".o.parquet.kftmp-{os.getppid()}-live00"
    live.write_bytes(b"in progress")
    other = tmp_path / f".p.parquet.kftmp-{2**22 + 1}-abc123"
    other.write_bytes(b"not this output's")
    note = tmp_path / ".o.parquet.notes.tmp"
    note.write_bytes(b"user's")
    link = tmp_path / f".o.parquet.kftmp-{2**22 + 1}-link00"
    link.symlink_to(tmp_path / "elsewhere")
    removed = remove_stale_temporaries(out)
    assert sorted(removed) == sorted([str(dead), str(dead_dir)])
    assert live.exists() and other.exists() and note.exists() and link.is_symlink() and os.path.exists(name)


def test_writer_deletes_only_its_own_page_in_the_making(tmp_path):
    path = str(tmp_path / "feed.dat")
    with kftools.Writer(path, page_size=4096) as w:
        w.write_ticker("A", 1.0)
    # a killed writer's page 1 in the making (header says page 1): provably this journal's
    with open(page_path(path, 1) + ".tmp", "wb") as fh:
        fh.truncate(4096)
    unrelated = {
        "feed.dat.notes.tmp": b"user notes",
        "feed.dat.x.1.tmp": b"another journal's page",
        "feed.dat.2.tmp": b"not a page header of this journal" + bytes(64),
    }
    for name, data in unrelated.items():
        (tmp_path / name).write_bytes(data)
    os.symlink(tmp_path / "elsewhere", page_path(path, 3) + ".tmp")
    with kftools.Writer(path, append=True) as w:
        w.write_ticker("A", 2.0)
    assert not os.path.exists(page_path(path, 1) + ".tmp")
    for name, data in unrelated.items():
        assert (tmp_path / name).read_bytes() == data
    assert os.path.islink(page_path(path, 3) + ".tmp")
    assert [f.last_price for f in kftools.Reader(path)] == [1.0, 2.0]


def test_writer_never_rolls_through_a_planted_link(tmp_path):
    path = str(tmp_path / "feed.dat")
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    os.symlink(target, page_path(path, 1) + ".tmp")
    with kftools.Writer(path, page_size=4096) as w:
        with pytest.raises(OutputError, match="cannot create the next page"):
            for i in range(1000):
                w.write_ticker("A", float(i))
    assert target.read_bytes() == b"keep"


def test_export_to_stdout_streams_parquet(tmp_path, src):
    import subprocess

    import pyarrow.parquet as pq
    from kftest import KFTOOLS, ROOT

    with open(tmp_path / "piped.parquet", "wb") as fh:
        r = subprocess.run([*KFTOOLS, "export", src, "-", "-q"], stdout=fh, stderr=subprocess.PIPE, text=True,
                           cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert pq.read_metadata(tmp_path / "piped.parquet").num_rows == kftools.Reader(src).count()
    assert "standard output" in run_cli("export", src, "-", "--split").stderr
    assert not os.path.exists(os.path.join(os.path.dirname(src), "-"))


def test_export_temporary_is_exclusive_private_and_a_killed_exports_is_cleaned_later(tmp_path, src):
    import signal
    import subprocess
    import time

    from kftest import KFTOOLS, ROOT

    out = tmp_path / "live.parquet"
    p = subprocess.Popen([*KFTOOLS, "export", src, str(out), "--follow", "-q"], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def temporaries():
        return [n for n in os.listdir(tmp_path) if n.startswith(".live.parquet.kftmp-")]

    deadline = time.monotonic() + 120
    while not temporaries():  # the event: the export's temporary exists
        assert p.poll() is None and time.monotonic() < deadline, "export --follow never started"
        time.sleep(0.02)
    (left,) = temporaries()
    assert stat.S_IMODE(os.lstat(tmp_path / left).st_mode) == 0o600
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert temporaries() == [left] and not out.exists()  # what kill -9 leaves
    r = run_cli("export", src, out, "-q")
    assert r.returncode == 0, r.stderr
    assert temporaries() == [] and out.exists()  # the next run removed the dead export's leftover


def test_import_cleans_a_killed_imports_leftover_and_refuses_bad_outputs(tmp_path, src):
    pq_path = tmp_path / "e.parquet"
    assert run_cli("export", src, pq_path, "-q").returncode == 0
    dead = tmp_path / f".back.dat.kftmp-{2**22 + 1}-abcdef"
    dead.mkdir()
    (dead / "back.dat").write_bytes(b"half a page")
    assert run_cli("import", pq_path, tmp_path / "back.dat").returncode == 0
    assert not dead.exists()
    assert kftools.Reader(str(tmp_path / "back.dat")).count() == kftools.Reader(src).count()
    (tmp_path / "link.dat").symlink_to(tmp_path / "back.dat")
    r = run_cli("import", pq_path, tmp_path / "link.dat", "--force")
    assert r.returncode == 2 and "symbolic link" in r.stderr


def test_recover_never_writes_through_a_link_planted_at_its_old_temporary_name(tmp_path):
    src = copy_journal(os.path.join(SAMPLES_DIR, "damaged.dat"), str(tmp_path))
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    out = tmp_path / "fixed.dat"
    os.symlink(victim, str(out) + ".tmp")  # the predictable name recover used to open
    r = run_cli("recover", src, "-o", out)
    assert r.returncode == 3, r.stderr
    assert victim.read_bytes() == b"keep" and kftools.verify(str(out)).clean
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert not [n for n in os.listdir(tmp_path) if "kftmp" in n]
