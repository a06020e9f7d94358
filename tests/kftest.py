"""Shared test helpers: sample journals, copying them, running the CLI as a user does.

Imported by name (`from kftest import ...`); conftest.py files are not importable by name
once tests/ has more than one of them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES_DIR = os.path.join(ROOT, "sample_journals")
SCHEMA = os.path.join(SAMPLES_DIR, "user_types.toml")
#: first pages of every sample journal
SAMPLES = sorted(glob.glob(os.path.join(SAMPLES_DIR, "*.dat")))
#: samples every command must read to the end without damage
CLEAN_SAMPLES = [p for p in SAMPLES if not os.path.basename(p).startswith("damaged")]
KFTOOLS = [sys.executable, "-m", "kftools.cli"]


def copy_journal(src: str, dst_dir: str, name: str | None = None) -> str:
    """Copy a journal (every page) into ``dst_dir``; returns the new first page path."""
    name = name or os.path.basename(src)
    dst = os.path.join(dst_dir, name)
    for page in glob.glob(glob.escape(src) + "*"):
        suffix = page[len(src):]
        if suffix == "" or suffix[1:].isdigit():
            shutil.copyfile(page, dst + suffix)
    return dst


def run_cli(*args, input: str | None = None, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``kftools ARGS`` in a subprocess, as a user would."""
    e = dict(os.environ)
    e.pop("KFTOOLS_SCHEMA", None)
    e.update(env or {})
    return subprocess.run(
        [*KFTOOLS, *map(str, args)], capture_output=True, text=True, input=input, timeout=timeout, cwd=ROOT, env=e,
    )


def wait_for(cond, what: str, timeout: float = 60) -> None:
    """Poll ``cond`` until true; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
