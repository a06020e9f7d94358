"""Every Python block of the README runs as written (in a fresh folder, in its own process) and ends."""

from __future__ import annotations

import os
import re
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
    # the timeout only guards against a hang (the follow("end") example once waited forever)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
