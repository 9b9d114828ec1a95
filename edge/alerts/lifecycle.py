"""Alert lifecycle: raised -> acknowledged -> resolved, with escalation; pure state, times passed in.

One situation (a rule signal's key) is one alert: a signal that is already open only updates
it; a cleared signal resolves it automatically. Every change comes out as a Transition, which
the service persists before anyone is told.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from edge.alerts.signals import AlertSignal
from edge.errors import EdgeError
from edge.events import Severity

SNAPSHOT_KINDS = frozenset({"intrusion", "loitering"})  # people alerts that take a zone snapshot
SNAPSHOT_FRESH_S = 60.0  # a zone snapshot this recent is evidence for an alert raised now


class AlertState(StrEnum):
    """Where an alert is in its life."""

    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of one alert: who did what, when, with which note."""

    alert_id: str
    action: str  # raised | acknowledged | resolved | escalated | snapshot
    actor: str  # "rules", "system" or a console user name
    ts: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert and its current state."""

    alert_id: str
    key: str
    kind: str
    severity: Severity
    room_id: str | None
    title: str
    state: AlertState
    raised_at: float
    updated_at: float
    detail: Mapping[str, Any] = field(default_factory=dict)
    camera_id: str | None = None
    escalated: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None


class AlertActionRefused(EdgeError):
    """A person asked for a change the alert's state does not allow (or the alert is unknown)."""

    def __init__(self, alert_id: str, reason: str) -> None:
        self.alert_id = alert_id
        self.reason = reason
        super().__init__(f"alert {alert_id}: {reason}")


class AlertBook:
    """The alerts of one gateway and the rules of how they change."""

    def __init__(self, escalate_after_s: float = 300.0,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        if escalate_after_s <= 0:
            raise ValueError("escalate_after_s must be > 0")
        self.escalate_after_s = escalate_after_s
        self._new_id = new_id
        self._alerts: dict[str, Alert] = {}
        self._open_by_key: dict[str, str] = {}
        self._zone_snaps: dict[tuple[str, str], tuple[str, float]] = {}  # (camera, zone) -> (id, ts)

    def get(self, alert_id: str) -> Alert | None:
        """One alert by id (open or resolved, while this book remembers it)."""
        return self._alerts.get(alert_id)

    def open_alerts(self) -> list[Alert]:
        """Alerts not yet resolved, most severe first, then newest first."""
        rank = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
        alerts = [self._alerts[i] for i in self._open_by_key.values()]
        return sorted(alerts, key=lambda a: (rank[a.severity], -a.raised_at))

    def signal(self, signal: AlertSignal, now: float) -> list[Transition]:
        """Apply a rule signal: raise a new situation, or resolve a cleared one."""
        open_id = self._open_by_key.get(signal.key)
        if signal.active:
            if open_id is not None:
                return []  # the same situation goes on: one alert, not fifty
            alert = Alert(self._new_id(), signal.key, signal.kind, signal.severity, signal.room_id,
                          signal.title, AlertState.RAISED, now, now, self._with_snapshot(signal, now),
                          signal.camera_id)
            self._alerts[alert.alert_id] = alert
            self._open_by_key[signal.key] = alert.alert_id
            return [Transition(alert.alert_id, "raised", "rules", now)]
        if open_id is None:
            return []
        return [self._resolve(open_id, "rules", "condition cleared", now)]

    def acknowledge(self, alert_id: str, actor: str, note: str, now: float) -> Transition:
        """A person has seen the alert and is handling it."""
        alert = self._open(alert_id)
        if alert.state is AlertState.ACKNOWLEDGED:
            raise AlertActionRefused(alert_id, f"already acknowledged by {alert.acknowledged_by}")
        self._alerts[alert_id] = replace(alert, state=AlertState.ACKNOWLEDGED, updated_at=now,
                                         acknowledged_by=actor, acknowledged_at=now)
        return Transition(alert_id, "acknowledged", actor, now, note)

    def resolve(self, alert_id: str, actor: str, note: str, now: float) -> Transition:
        """A person closes the alert by hand."""
        self._open(alert_id)
        return self._resolve(alert_id, actor, note, now)

    def tick(self, now: float) -> list[Transition]:
        """Escalate critical alerts nobody acknowledged within escalate_after_s (once each)."""
        out = []
        for alert_id in list(self._open_by_key.values()):
            alert = self._alerts[alert_id]
            if (alert.severity is Severity.CRITICAL and alert.state is AlertState.RAISED
                    and not alert.escalated and now - alert.raised_at >= self.escalate_after_s):
                self._alerts[alert_id] = replace(alert, escalated=True, updated_at=now)
                out.append(Transition(alert_id, "escalated", "system", now,
                                      f"not acknowledged within {self.escalate_after_s:g}s"))
        return out

    def zone_snapshot(self, camera_id: str, zone_id: str, snapshot_id: str, ts: float,
                      now: float) -> list[Transition]:
        """A zone snapshot was kept: attach it to that zone's open people alerts that lack one."""
        self._zone_snaps[(camera_id, zone_id)] = (snapshot_id, ts)
        out = []
        for alert_id in list(self._open_by_key.values()):
            alert = self._alerts[alert_id]
            if _wants_snapshot(alert.kind, alert.camera_id, alert.detail) == (camera_id, zone_id):
                self._alerts[alert_id] = replace(alert, detail={**alert.detail, "snapshot_id": snapshot_id},
                                                 updated_at=now)
                out.append(Transition(alert_id, "snapshot", "system", now))
        return out

    def replay(self, data: Mapping[str, Any], severity: Severity, room_id: str | None, ts: float) -> None:
        """Rebuild state from one stored alert transition (at start, in seq order)."""
        alert_id, action = str(data.get("alert_id", "")), data.get("action")
        alert = self._alerts.get(alert_id)
        if action == "raised" or alert is None:
            if not alert_id or not data.get("key"):
                return  # not an alert transition this code wrote: ignore it
            alert = Alert(alert_id, str(data["key"]), str(data.get("kind", "")), severity, room_id,
                          str(data.get("title", "")), AlertState.RAISED, ts, ts,
                          dict(data.get("detail") or {}), data.get("camera_id"))
        actor = str(data.get("actor", ""))
        if action == "acknowledged":
            alert = replace(alert, state=AlertState.ACKNOWLEDGED, acknowledged_by=actor, acknowledged_at=ts)
        elif action == "resolved":
            alert = replace(alert, state=AlertState.RESOLVED, resolved_by=actor, resolved_at=ts)
        elif action == "escalated":
            alert = replace(alert, escalated=True)
        elif action == "snapshot" and isinstance(data.get("detail"), Mapping):
            alert = replace(alert, detail=dict(data["detail"]))
        alert = replace(alert, updated_at=ts)
        self._alerts[alert_id] = alert
        if alert.state is AlertState.RESOLVED:
            if self._open_by_key.get(alert.key) == alert_id:
                del self._open_by_key[alert.key]
        else:
            self._open_by_key[alert.key] = alert_id

    def forget_resolved(self, keep: int = 1000) -> None:
        """Drop the oldest resolved alerts from memory (the store keeps them)."""
        resolved = sorted((a for a in self._alerts.values() if a.state is AlertState.RESOLVED),
                          key=lambda a: a.resolved_at or 0.0)
        for alert in resolved[:max(0, len(resolved) - keep)]:
            del self._alerts[alert.alert_id]

    def _with_snapshot(self, signal: AlertSignal, now: float) -> dict[str, Any]:
        """A new alert's detail, with the zone's snapshot when one was kept just before."""
        detail = dict(signal.detail)
        zone = _wants_snapshot(signal.kind, signal.camera_id, detail)
        snap = self._zone_snaps.get(zone) if zone is not None else None
        if snap is not None and 0.0 <= now - snap[1] <= SNAPSHOT_FRESH_S:
            detail["snapshot_id"] = snap[0]
        return detail

    def _open(self, alert_id: str) -> Alert:
        alert = self._alerts.get(alert_id)
        if alert is None:
            raise AlertActionRefused(alert_id, "no such alert")
        if alert.state is AlertState.RESOLVED:
            raise AlertActionRefused(alert_id, f"already resolved by {alert.resolved_by}")
        return alert

    def _resolve(self, alert_id: str, actor: str, note: str, now: float) -> Transition:
        alert = self._alerts[alert_id]
        self._alerts[alert_id] = replace(alert, state=AlertState.RESOLVED, updated_at=now,
                                         resolved_by=actor, resolved_at=now)
        self._open_by_key.pop(alert.key, None)
        return Transition(alert_id, "resolved", actor, now, note)


def _wants_snapshot(kind: str, camera_id: str | None, detail: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (camera, zone) whose snapshot this alert should carry; None when it has one or takes none."""
    zone_id = detail.get("zone_id")
    if kind not in SNAPSHOT_KINDS or camera_id is None or not isinstance(zone_id, str):
        return None
    if "snapshot_id" in detail:
        return None
    return camera_id, zone_id
