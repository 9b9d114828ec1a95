"""Server-side console sessions: random tokens in memory, idle expiry, a CSRF token each."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from edge.clock import Clock

IDLE_S = 12 * 3600.0
MAX_SESSIONS = 1000


@dataclass
class Session:
    """One logged-in browser: the cookie token, who it is, and its CSRF token."""

    token: str
    username: str
    csrf_token: str
    last_seen: float


class SessionTable:
    """Sessions by token; a token idle for idle_s is gone (tokens never leave this process)."""

    def __init__(self, clock: Clock, idle_s: float = IDLE_S, max_sessions: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, username: str) -> Session:
        """Start a fresh session (a new token every login: no session fixation)."""
        now = self._clock.monotonic()
        self._expire(now)
        if len(self._sessions) >= self.max_sessions:
            # Bound memory against a credentialed client logging in in a loop: drop the stalest.
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.token]
        session = Session(secrets.token_urlsafe(32), username, secrets.token_urlsafe(32), now)
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None, touch: bool = True) -> Session | None:
        """The live session for a cookie token (renewing its idle time when touch), else None."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self._clock.monotonic()
        if now - session.last_seen >= self.idle_s:
            del self._sessions[token]
            return None
        if touch:
            session.last_seen = now
        return session

    def drop(self, token: str) -> None:
        """End one session."""
        self._sessions.pop(token, None)

    def drop_user(self, username: str) -> None:
        """End every session of one user (removed or disabled)."""
        for token in [t for t, s in self._sessions.items() if s.username == username]:
            del self._sessions[token]


    def _expire(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if now - s.last_seen >= self.idle_s]:
            del self._sessions[token]
