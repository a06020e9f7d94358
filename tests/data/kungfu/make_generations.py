"""Write the sample journals of the later Kungfu generations (tests/data/kungfu/generations) and their manifests.

Run from the repository root: ``python tests/data/kungfu/make_generations.py``. Deterministic (seeded); written
by tests/kungfu_writer.py, which follows each generation's public layouts (docs/kungfu.md). The Kungfu 2.4
samples beside it (kf_home/) were written by a program compiled against Kungfu 2.4's own headers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))  # tests/, for kungfu_writer

from kungfu_writer import KungfuTestWriter, pack  # noqa: E402

from kftools.journal import yijinjing as kf  # noqa: E402

OUT = os.path.join(HERE, "generations")
T0 = 1_700_000_000_000_000_000
SYMBOLS = [("rb2405", "SHFE"), ("600000", "SSE"), ("000001", "SZSE")]
#: where each sample goes (location under runtime/), its generation, page size, frames, and how it ends
SAMPLES = [
    ("md/sim/feed/journal/live", kf.KUNGFU_2_X_57, 128 << 10, 700, "clean"),  # spans pages
    ("td/sim/acct2/journal/live", kf.KUNGFU_2_X_65, 128 << 10, 300, "crashed"),  # a frame with length 0 mid-page
    ("strategy/default/v4demo/journal/live", kf.KUNGFU_WIRE_V1, 32 << 10, 400, "clean"),  # JSON frames, spans pages
]


def later_frame(rng: random.Random, gen_time: int) -> tuple[int, bytes, dict]:
    """A later-2.x longfist frame: (msg_type, payload, manifest fields)."""
    sym, exch = rng.choice(SYMBOLS)
    price = round(rng.uniform(5, 50), 2)
    volume = float(rng.randrange(1, 50) * 100)
    t = rng.choice([kf.LaterMsgType.Quote] * 5 + [kf.LaterMsgType.Transaction] * 2 + [kf.LaterMsgType.Entrust,
                   kf.LaterMsgType.Order, kf.LaterMsgType.Trade])
    layout = kf.LATER_LAYOUTS[t]
    common = {"instrument_id": sym.encode(), "exchange_id": exch.encode(), "data_time": gen_time}
    if t == kf.LaterMsgType.Quote:
        bids = [round(price - 0.01 * (i + 1), 2) for i in range(10)]
        asks = [round(price + 0.01 * (i + 1), 2) for i in range(10)]
        fields = {**common, "last_price": price, "volume": volume, "bid_price": bids, "ask_price": asks,
                  "bid_volume": [100.0 * (i + 1) for i in range(10)], "ask_volume": [100.0 * (i + 2) for i in range(10)]}
    elif t == kf.LaterMsgType.Order:
        fields = {**common, "order_id": gen_time % 100000, "limit_price": price, "volume": volume,
                  "volume_left": volume, "insert_time": gen_time, "trading_day": b"20231114"}
    elif t == kf.LaterMsgType.Trade:
        fields = {**common, "trade_id": gen_time % 100000, "price": price, "volume": volume, "trade_time": gen_time}
    else:
        fields = {**common, "price": price, "volume": volume}
    shown = {"instrument_id": sym, "price": price if t != kf.LaterMsgType.Quote else None, "volume": volume}
    if t == kf.LaterMsgType.Quote:
        shown["price"] = price
    return int(t), pack(layout, **fields), shown


def write_sample(location: str, gen: kf.Generation, page_size: int, n: int, end: str, seed: int) -> list[dict]:
    rng = random.Random(seed)
    folder = os.path.join(OUT, "kf_home", "runtime", *location.split("/"))
    w = KungfuTestWriter(folder, page_size=page_size, source=0xC0FFEE + seed, generation=gen)
    rows = []
    t = T0 + seed * 37
    start = gen.session_start
    if start is not None:
        w.write(start, b"", t)
        rows.append({"msg_type": start, "gen_time": t})
    for i in range(n):
        t += rng.randrange(500, 3000)
        if gen is kf.KUNGFU_WIRE_V1:
            # the v4 schema core declares no trading types: a service writes its facts as JSON frames
            doc = {"seq": i, "instrument_id": rng.choice(SYMBOLS)[0], "price": round(rng.uniform(5, 50), 2)}
            text = json.dumps(doc, separators=(",", ":")).encode()
            w.write(20000 + i % 3, text, t, data_type=kf.FrameDataType.Json)
            rows.append({"msg_type": 20000 + i % 3, "gen_time": t, "json": doc})
            continue
        mt, payload, shown = later_frame(rng, t)
        w.write(mt, payload, t)
        rows.append({"msg_type": mt, "gen_time": t, **shown})
    if end == "crashed":
        # killed mid-frame, in the middle of a page: header and data stored, length (and gen_time) never
        mt, payload, _ = later_frame(rng, t + 1)
        w.write_half(mt, payload)
    w.close()
    for row, frame in zip(rows, w.written, strict=True):
        row["page"], row["offset"] = frame["page"], frame["offset"]
    return [{"page": r.pop("page"), "offset": r.pop("offset"), **r} for r in rows]


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    for seed, (location, gen, page_size, n, end) in enumerate(SAMPLES, 1):
        rows = write_sample(location, gen, page_size, n, end, seed)
        name = "-".join(location.split("/")[:3])
        with open(os.path.join(OUT, f"{name}.manifest.jsonl"), "w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        print(f"{location}: {gen.name}, {len(rows)} frames")


if __name__ == "__main__":
    main()
