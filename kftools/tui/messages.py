"""Messages from the follower thread to the app (Textual messages are thread-safe to post)."""

from __future__ import annotations

from textual.message import Message


class WatcherEvent(Message):
    """A rare event of the follower: waiting, opened, caught_up, damaged, error."""

    def __init__(self, generation: int, kind: str, payload: object = None):
        super().__init__()
        self.generation = generation  # which follower (filters restart it): stale events are ignored
        self.kind = kind
        self.payload = payload
