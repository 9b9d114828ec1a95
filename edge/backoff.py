"""Jittered exponential backoff for reconnect loops."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays that double from initial_s up to max_s, with full jitter."""

    def __init__(
        self, initial_s: float, max_s: float, rng: Callable[[], float] = random.random
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng
        self.attempt = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count the attempt."""
        ceiling = min(self.max_s, self.initial_s * 2**self.attempt)
        self.attempt += 1
        # Full jitter spreads dozens of gateways reconnecting after a broker restart.
        return float(self.initial_s / 2 + self._rng() * (ceiling - self.initial_s / 2))

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self.attempt = 0
