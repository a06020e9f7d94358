"""Every Python block of the README runs as written (in a fresh folder, in its own process) and ends."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from kftest import ROOT

README = os.path.join(ROOT, "README.md")
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return BLOCK.findall(fh.read())


def test_the_readme_has_python_blocks():
    assert python_blocks(README), "the README lost its library example"


@pytest.mark.parametrize("index", range(len(python_blocks(README))))
def test_readme_python_block_runs(tmp_path, index):
    code = python_blocks(README)[index]
    # the README's Kungfu example reads ./kf_home: the folder holds the sample KF_HOME, as a user's would
    shutil.copytree(os.path.join(ROOT, "tests", "data", "kungfu", "kf_home"), tmp_path / "kf_home")
    # the timeout only guards against a hang (the follow("end") example once waited forever)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr


def test_every_relative_link_in_the_docs_resolves():
    """docs/reliability.md once linked RELIABILITY.md relative to docs/, where it is not."""
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    docs = [README, os.path.join(ROOT, "FORMAT.md"), os.path.join(ROOT, "RELIABILITY.md")]
    docs += [os.path.join(ROOT, "docs", n) for n in os.listdir(os.path.join(ROOT, "docs")) if n.endswith(".md")]
    broken = []
    for doc in docs:
        with open(doc, encoding="utf-8") as fh:
            for target in link.findall(fh.read()):
                if "://" in target or target.startswith("mailto:"):
                    continue
                if not os.path.exists(os.path.join(os.path.dirname(doc), target)):
                    broken.append(f"{os.path.relpath(doc, ROOT)}: {target}")
    assert broken == []


def test_strategy_is_said_to_run_arbitrary_code_in_help_and_docs():
    r = subprocess.run([sys.executable, "-m", "kftools.cli", "replay", "-h"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120, env=dict(os.environ, COLUMNS="200"))
    assert "arbitrary Python code" in " ".join(r.stdout.split())
    for doc in (README, os.path.join(ROOT, "docs", "replay.md")):
        with open(doc, encoding="utf-8") as fh:
            assert "runs arbitrary code" in " ".join(fh.read().split()), doc
