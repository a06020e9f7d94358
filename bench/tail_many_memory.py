"""Memory per row of the merged tail's index, measured from outside.

Run it twice under ``/usr/bin/time -v`` on the same journals: ``merge`` only
merges them (MergedReader.batches, what the merged tail's follower reads);
``index`` also keeps every row in a MergedIndex, as the live view does. The
difference of the two "Maximum resident set size" lines over the row count is
the index's cost per row:

    /usr/bin/time -v .venv/bin/python bench/tail_many_memory.py merge j1.dat j2.dat j3.dat
    /usr/bin/time -v .venv/bin/python bench/tail_many_memory.py index j1.dat j2.dat j3.dat
"""

from __future__ import annotations

import sys

from kftools import open_many
from kftools.tui.merged import MergedIndex


def main(mode: str, paths: list[str]) -> None:
    index = MergedIndex() if mode == "index" else None
    rows = 0
    with open_many(paths) as m:
        if index is not None:
            index.set_journals(m.journals)
        for b in m.batches():
            rows += len(b)
            if index is not None:
                index.add(b)
    held = f", index arrays {index.nbytes:,} bytes ({index.nbytes / rows:.2f} per row)" if index else ""
    print(f"{mode}: {rows:,} rows{held}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
