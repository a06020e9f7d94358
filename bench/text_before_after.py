"""``cat -F text|jsonl|csv`` lines/s before and after, in one session: an older tree's ``kftools`` (per-frame
Python rendering) against this checkout's, alternating, on the same journal, stdout on /dev/null.

    git archive ff3c4a2 kftools | tar -x -C /tmp/old    # then copy kftools/journal/*.so beside it
    python bench/text_before_after.py /tmp/old JOURNAL FRAMES
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from kftools.bench.text import _CHILD


def run(old_tree: str | None, journal: str, fmt: str) -> dict:
    env = dict(os.environ)
    if old_tree:
        env["PYTHONPATH"] = old_tree
    with open(os.devnull, "wb") as null:
        p = subprocess.run([sys.executable, "-c", _CHILD, "cat", journal, "-F", fmt], stdout=null,
                           stderr=subprocess.PIPE, env=env, cwd="/" if old_tree else None, check=False)
    return json.loads(p.stderr.decode().strip().splitlines()[-1])


def main() -> None:
    old, journal, frames = sys.argv[1], os.path.abspath(sys.argv[2]), int(sys.argv[3])
    out = {}
    for fmt in ("text", "jsonl", "csv"):
        b, a = run(old, journal, fmt), run(None, journal, fmt)
        out[fmt] = {"before_lines_per_s": round(frames / b["seconds"]), "before_cpu_lines_per_s": round(frames / b["cpu"]),
                    "after_lines_per_s": round(frames / a["seconds"]), "after_cpu_lines_per_s": round(frames / a["cpu"])}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
