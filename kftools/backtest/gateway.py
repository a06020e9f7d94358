"""Strategies in their own processes: the replay follows their order journals, as an engine's gateway does.

A strategy process follows the replay's output with ``kftools.Reader`` (or the
C++ header) and writes Order and CancelRequest frames into a journal of its
own, with ``trigger_time`` = the ``trigger_time`` of the frame it reacted to
(the recording time). The replay reads what is new in every order journal
before each chunk it hands the exchange, never waiting for it; the exchange's
answers (OrderUpdate, Fill) go into the replay's output, where the strategy
reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import NotAJournal
from ..journal.format import FRAME_HEADER_SIZE, MsgType
from ..journal.reader import Reader


@dataclass(frozen=True)
class Request:
    """One request read from an order journal."""

    kind: str  # "new" or "cancel"
    symbol: str
    order_id: int
    side: int = 0
    order_type: int = 0
    price: float = 0.0
    quantity: float = 0.0
    client_order_id: str = ""
    trigger_time: int = 0


class OrderJournals:
    """Reads new Order and CancelRequest frames from strategies' journals without blocking."""

    def __init__(self, paths: list[str]):
        self.paths = list(paths)
        self._readers: list[Reader | None] = [None] * len(self.paths)
        self._pos: list[tuple[int, int] | None] = [None] * len(self.paths)

    def poll(self) -> list[Request]:
        """What was committed since the last poll, journal by journal, in each journal's order."""
        out: list[Request] = []
        for i, path in enumerate(self.paths):
            r = self._readers[i]
            if r is None:
                try:
                    r = self._readers[i] = Reader(path)
                except NotAJournal:
                    continue  # the strategy has not created it yet
            for b in r.batches(start=self._pos[i]):
                h = b.headers
                self._pos[i] = (b.page.index, int(b.offsets[-1]) + FRAME_HEADER_SIZE + int(h["length"][-1]))
                kinds = h["msg_type"].tolist()
                trig = h["trigger_time"].tolist()
                orders = iter(b.payload(int(MsgType.ORDER)).tolist()) if int(MsgType.ORDER) in kinds else iter(())
                cancels = (iter(b.payload(int(MsgType.CANCEL_REQUEST)).tolist())
                           if int(MsgType.CANCEL_REQUEST) in kinds else iter(()))
                for k, mt in enumerate(kinds):
                    if mt == MsgType.ORDER:
                        sym, oid, side, otype, price, qty, _filled, coid = next(orders)
                        out.append(Request("new", _text(sym), oid, side, otype, price, qty, _text(coid), trig[k]))
                    elif mt == MsgType.CANCEL_REQUEST:
                        sym, oid = next(cancels)
                        out.append(Request("cancel", _text(sym), oid, trigger_time=trig[k]))
        return out

    def close(self) -> None:
        for r in self._readers:
            if r is not None:
                r.close()


def _text(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def bad_request(req: Request) -> int:
    """The RejectReason for an order that cannot be accepted as sent (0 when it can)."""
    from ..journal.format import OrderType, RejectReason, Side

    if req.side not in (Side.BUY, Side.SELL) or req.order_type not in (OrderType.LIMIT, OrderType.MARKET):
        return RejectReason.BAD_PRICE if req.side in (0, 1) else RejectReason.BAD_QUANTITY
    if not (req.quantity > 0 and math.isfinite(req.quantity)):
        return RejectReason.BAD_QUANTITY
    if req.order_type == OrderType.LIMIT and not (req.price > 0 and math.isfinite(req.price)):
        return RejectReason.BAD_PRICE
    return 0
