"""Where a replay's frames go: the plain output, an in-process backtest, or the gateway to strategy processes.

The pacing sees only the :class:`Dispatcher` protocol; the replay picks one when it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..backtest.gateway import Gateway
    from ..journal.writer import Writer

#: the in-process strategy's turn: ``(batch, i, j, wall)`` after frames ``i..j-1`` of ``batch`` went out
Handle = Callable[[Any, int, int, int], None]


class Dispatcher(Protocol):
    """Takes the replayed frames into the output, and tells whoever trades on them."""

    #: frames may go straight into the output page without passing through Python (the C pacer's way)
    direct: bool
    #: called after each emission when a strategy runs in-process (its time counts as the replay's); else None
    handle: Handle | None

    def start(self) -> None:
        """Before the first frame."""

    def emit(self, data: Any, starts: Any, i: int, j: int, batch: Any, wall: int) -> int:
        """Frames ``i..j-1`` (bytes ``data`` at offsets ``starts``, gen_time already ``wall``) into the output,
        with what they cause; returns how many went out (fewer only when stopped)."""
        ...

    def finish(self) -> None:
        """After the last frame (also when stopped): what is still on its way, then the strategy's ``on_stop``."""

    @property
    def orders_sent(self) -> int:
        """Orders the strategies sent."""
        ...


class PlainOutput:
    """No strategy: frames go to the output writer (a kftools journal, or a Kungfu one: ``direct`` False)."""

    handle: Handle | None = None

    def __init__(self, writer: Writer, direct: bool = True):
        self.writer = writer
        self.direct = direct
        self._write = writer.write_raw_frames

    def start(self) -> None:
        pass

    def emit(self, data, starts, i: int, j: int, batch, wall: int) -> int:
        self._write(data, starts, i, j)
        return j - i

    def finish(self) -> None:
        pass

    @property
    def orders_sent(self) -> int:
        return 0


class InProcessBacktest(PlainOutput):
    """A strategy in this process: frames go to the output, then the engine hands them to the strategy."""

    def __init__(self, engine, writer: Writer):
        super().__init__(writer, direct=False)
        self.engine = engine
        self.handle = engine.frames

    def start(self) -> None:
        self.engine.call("on_start")

    def finish(self) -> None:
        self.engine.finish()  # answers still on their way reach the strategy before on_stop
        self.engine.call("on_stop")

    @property
    def orders_sent(self) -> int:
        return self.engine.ctx.orders_sent


class OutOfProcessGateway:
    """Strategies in their own processes: the gateway writes the frames itself, interleaved with the exchange's
    answers, and (lockstep) waits for the strategies' acknowledgements."""

    direct = False
    handle: Handle | None = None

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def start(self) -> None:
        self.gateway.call("on_start")

    def emit(self, data, starts, i: int, j: int, batch, wall: int) -> int:
        return self.gateway.emit(data, starts, i, j, batch, wall)

    def finish(self) -> None:
        self.gateway.finish()  # answers still on their way reach the strategies before on_stop
        self.gateway.call("on_stop")

    @property
    def orders_sent(self) -> int:
        return self.gateway.ctx.orders_sent
