"""Which EVENT seqs of a node were seen and acknowledged since its last HELLO. Sans-I/O."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from firmware_bridge.node_protocol.messages import Event

EVENT_WINDOW = 64  # a node keeps far fewer unacknowledged events than this

Arrival = Literal["new", "pending", "acked"]


class EventWindow:
    """The last EVENT seqs of one node: deliver each event once, answer repeats of acked ones."""

    def __init__(self, size: int = EVENT_WINDOW) -> None:
        self._size = size
        self._seen: OrderedDict[int, tuple[Event, bool]] = OrderedDict()  # seq -> (event, acked)

    def reset(self) -> None:
        """Forget every seq: the node restarted (sent HELLO) and numbers anew."""
        self._seen.clear()

    def arrived(self, seq: int, event: Event) -> Arrival:
        """Classify an EVENT frame: new, a repeat not yet acked, or a repeat already acked."""
        known = self._seen.get(seq)
        # Same seq but another event: the node restarted and we missed its HELLO. Treat it
        # as new, since swallowing a real event is worse than storing one twice.
        if known is not None and known[0] == event:
            return "acked" if known[1] else "pending"
        self._seen[seq] = (event, False)
        self._seen.move_to_end(seq)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return "new"

    def ack(self, seq: int) -> bool:
        """Mark seq acknowledged; False when it is not in the window (forgot it at a HELLO)."""
        known = self._seen.get(seq)
        if known is None:
            return False
        self._seen[seq] = (known[0], True)
        return True
