"""AlertSignal and the emitter that turns rule states into raise-once / clear-once signals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from edge.events import Severity


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """A situation started (active=True) or ended (active=False); the lifecycle layer keys on `key`."""

    key: str
    kind: str
    active: bool
    severity: Severity
    room_id: str | None
    title: str
    ts: float
    detail: dict[str, Any] = field(default_factory=dict)
    source_event_id: str | None = None
    camera_id: str | None = None


@dataclass(frozen=True, slots=True)
class Want:
    """What a rule wants raised for a key (everything of a signal but key, active and ts)."""

    kind: str
    severity: Severity
    room_id: str | None
    title: str
    detail: dict[str, Any] = field(default_factory=dict)
    source_event_id: str | None = None
    camera_id: str | None = None


class Emitter:
    """Remembers what was raised, so each situation is raised once and cleared once."""

    def __init__(self, cooldown_s: float, room_names: Mapping[str, str] | None = None) -> None:
        self.cooldown_s = cooldown_s
        self.room_names = dict(room_names or {})
        self.active: dict[str, AlertSignal] = {}
        self._resolved_at: dict[str, float] = {}
        self._muted: set[str] = set()  # resolved by a person while the condition still held
        self.pending: list[AlertSignal] = []

    def room(self, room_id: str | None) -> str:
        """Human name of a room for titles."""
        if room_id is None:
            return "unknown room"
        return self.room_names.get(room_id) or f"room {room_id}"

    def set(self, key: str, want: Want | None, now: float) -> None:
        """Rule state for key: a Want to raise (or keep), None to clear; only changes are emitted."""
        current = self.active.get(key)
        if want is None:
            self._muted.discard(key)
            if current is not None:
                del self.active[key]
                self._resolved_at[key] = now
                self.pending.append(replace(current, active=False, ts=now))
            return
        if current is not None or key in self._muted:
            return
        resolved = self._resolved_at.get(key)
        # Cooldown stops a flapping warning from paging the guard again and again; a critical
        # situation (panic, smoke, intrusion) is always told at once.
        if (want.severity is not Severity.CRITICAL and resolved is not None
                and now - resolved < self.cooldown_s):
            return
        signal = AlertSignal(key, want.kind, True, want.severity, want.room_id, want.title, now,
                             dict(want.detail), want.source_event_id, want.camera_id)
        self.active[key] = signal
        self.pending.append(signal)

    def resolved_by_person(self, key: str) -> None:
        """A person resolved key: stay quiet until its condition clears once, then raise anew."""
        if self.active.pop(key, None) is not None:
            self._muted.add(key)

    def rearm(self, key: str) -> None:
        """A new triggering event (a new press) may raise key again even if a person muted it."""
        self._muted.discard(key)

    def drain(self) -> list[AlertSignal]:
        """Signals produced since the last drain, in order."""
        out, self.pending = self.pending, []
        return out


class Level:
    """A debounced, hysteretic condition: on after `raise` held for_s, off at `clear`."""

    __slots__ = ("on", "since")

    def __init__(self) -> None:
        self.on = False
        self.since: float | None = None

    def step(self, raise_now: bool, clear_now: bool, now: float, for_s: float) -> bool:
        """Feed the current condition; returns whether the level is on."""
        if self.on:
            if clear_now:
                self.on, self.since = False, None
            return self.on
        if not raise_now:
            self.since = None  # must hold continuously; the band between thresholds resets it too
            return False
        if self.since is None:
            self.since = now
        if now - self.since >= for_s:
            self.on = True
        return self.on
