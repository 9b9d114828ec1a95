"""The one-time setup token that lets the first admin be created from the console."""

from __future__ import annotations

import asyncio
import hashlib
import secrets


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class SetupToken:
    """Holds only the hash of the token, and only until it is used or an admin exists."""

    def __init__(self) -> None:
        self._digest: bytes | None = None
        # Serialises the create step: two right guesses at once must not make two admins.
        self.lock = asyncio.Lock()

    @property
    def pending(self) -> bool:
        """True while a token is waiting to be used."""
        return self._digest is not None

    def issue(self) -> str:
        """Make a new token (replacing any earlier one) and return it; it is never readable again."""
        token = secrets.token_urlsafe(24)
        self._digest = _digest(token)
        return token

    def matches(self, token: str) -> bool:
        """True if a token is pending and this is it (constant-time compare)."""
        if self._digest is None:
            return False
        return secrets.compare_digest(_digest(token), self._digest)

    def clear(self) -> None:
        """Invalidate the token: used, or an admin appeared by other means."""
        self._digest = None
