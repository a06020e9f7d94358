"""Shared test helpers: sample journals, copying them, running the CLI as a user does.

Imported by name (`from kftest import ...`); conftest.py files are not importable by name
once tests/ has more than one of them.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def moto_s3(bucket: str = "bucket"):
    """moto's S3 server on 127.0.0.1 (stopped after) with ``bucket``; yields the environment a user would set."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "kftools-test-key", "AWS_SECRET_ACCESS_KEY": "kftools-test-secret-value",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        def accepting() -> bool:
            assert proc.poll() is None, "moto server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(accepting, "moto's S3 server to accept connections")
        from pyarrow import fs

        fs.S3FileSystem(access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
                        endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True).create_dir(bucket)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)
