"""Golden files: what each sample journal decodes to, checked in.

Regenerate after an intended change with ``KFTOOLS_REGEN_GOLDEN=1 make test``.
"""

from __future__ import annotations

import json
import os

import pytest
from kftest import ROOT, SAMPLES, SCHEMA

from kftools import Reader, verify
from kftools.journal.schemas import load_registry

GOLDEN = os.path.join(ROOT, "tests", "golden")


def decode(path: str) -> dict:
    reg = load_registry([SCHEMA])
    with Reader(path, registry=reg) as r:
        frames = [dict(f.to_dict(), page=f.page_index, offset=f.offset, length=f.length) for f in r]
        damage = None if r.damage is None else {"page": r.damage.page, "offset": r.damage.offset,
                                                "reason": r.damage.reason}
        state = r.writer_state()[0]
    rep = verify(path, reg)
    return {"frames": frames, "damage": damage, "writer_state": state, "pages": len(rep.pages)}


@pytest.mark.parametrize("sample", SAMPLES, ids=os.path.basename)
def test_sample_decodes_to_its_golden_file(sample):
    name = os.path.basename(sample).replace(".dat", ".json")
    golden = os.path.join(GOLDEN, name)
    got = decode(sample)
    if os.environ.get("KFTOOLS_REGEN_GOLDEN"):
        with open(golden, "w") as fh:  # one frame a line: reviewable diffs
            head = {k: v for k, v in got.items() if k != "frames"}
            fh.write('{"frames": [\n' + ",\n".join(json.dumps(f, sort_keys=True) for f in got["frames"]))
            fh.write("\n], " + json.dumps(head, sort_keys=True)[1:] + "\n")
    with open(golden) as fh:
        assert got == json.load(fh)
