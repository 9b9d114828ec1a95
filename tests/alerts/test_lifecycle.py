"""Alert lifecycle: one situation is one alert; acknowledge, resolve, escalate; refused actions."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from edge.alerts.lifecycle import AlertActionRefused, AlertBook, AlertState
from edge.events import Severity


@dataclass(frozen=True)
class Sig:
    key: str
    active: bool = True
    kind: str = "intrusion"
    severity: Severity = Severity.CRITICAL
    room_id: str | None = "r101"
    title: str = "Person in Classroom 101 after hours"
    detail: dict[str, Any] = field(default_factory=dict)
    camera_id: str | None = "cam1"


def book(escalate_after_s: float = 300.0) -> AlertBook:
    ids = (f"a{i}" for i in itertools.count(1))
    return AlertBook(escalate_after_s, new_id=lambda: next(ids))


def test_one_situation_is_one_alert_and_clears_itself() -> None:
    alerts = book()
    assert [t.action for t in alerts.signal(Sig("intrusion:r101"), 10.0)] == ["raised"]
    for now in (11.0, 12.0, 13.0):
        assert alerts.signal(Sig("intrusion:r101"), now) == []
    (cleared,) = alerts.signal(Sig("intrusion:r101", active=False), 20.0)
    assert (cleared.action, cleared.actor, cleared.alert_id) == ("resolved", "rules", "a1")
    assert alerts.open_alerts() == []
    assert alerts.signal(Sig("intrusion:r101", active=False), 21.0) == []  # nothing open: nothing to do
    # The same situation later is a new alert.
    assert alerts.signal(Sig("intrusion:r101"), 30.0)[0].alert_id == "a2"


def test_acknowledge_then_resolve_by_hand_with_notes() -> None:
    alerts = book()
    alerts.signal(Sig("panic:r101", kind="panic"), 5.0)
    ack = alerts.acknowledge("a1", "guard1", "on my way", 6.0)
    assert (ack.action, ack.actor, ack.note) == ("acknowledged", "guard1", "on my way")
    alert = alerts.get("a1")
    assert alert is not None and alert.state is AlertState.ACKNOWLEDGED and alert.acknowledged_at == 6.0
    with pytest.raises(AlertActionRefused, match="already acknowledged by guard1"):
        alerts.acknowledge("a1", "guard2", "", 7.0)
    done = alerts.resolve("a1", "guard1", "false alarm, child pressed it", 8.0)
    assert done.action == "resolved" and alerts.get("a1").state is AlertState.RESOLVED  # type: ignore[union-attr]
    with pytest.raises(AlertActionRefused, match="already resolved by guard1"):
        alerts.resolve("a1", "guard2", "", 9.0)
    with pytest.raises(AlertActionRefused, match="no such alert"):
        alerts.acknowledge("nope", "guard1", "", 9.0)


def test_unacknowledged_critical_alerts_escalate_once() -> None:
    alerts = book(escalate_after_s=60)
    alerts.signal(Sig("smoke:r101", kind="smoke"), 0.0)
    alerts.signal(Sig("tamper:cam1", kind="camera_tamper", severity=Severity.WARNING), 0.0)
    alerts.signal(Sig("panic:r102", kind="panic", room_id="r102"), 0.0)
    alerts.acknowledge("a3", "guard1", "", 30.0)
    assert alerts.tick(59.0) == []
    (escalated,) = alerts.tick(60.0)
    assert (escalated.alert_id, escalated.action, escalated.actor) == ("a1", "escalated", "system")
    assert alerts.tick(600.0) == []  # once, and never the warning or the acknowledged one


def test_open_alerts_are_ordered_for_the_guard() -> None:
    alerts = book()
    alerts.signal(Sig("co2:r101", kind="co2_notice", severity=Severity.INFO), 1.0)
    alerts.signal(Sig("offline:node", kind="device_offline", severity=Severity.WARNING), 2.0)
    alerts.signal(Sig("panic:r101", kind="panic"), 3.0)
    alerts.signal(Sig("smoke:r101", kind="smoke"), 4.0)
    assert [a.kind for a in alerts.open_alerts()] == ["smoke", "panic", "device_offline", "co2_notice"]


def test_forget_resolved_keeps_open_alerts() -> None:
    alerts = book()
    for i in range(5):
        alerts.signal(Sig(f"k{i}"), float(i))
    for i in range(4):
        alerts.signal(Sig(f"k{i}", active=False), 10.0 + i)
    alerts.forget_resolved(keep=1)
    assert [a for a in ("a1", "a2", "a3") if alerts.get(a)] == []
    assert alerts.get("a4") is not None and alerts.get("a5") is not None


def test_replay_rebuilds_open_alerts_and_ignores_foreign_data() -> None:
    alerts = book()
    raised = {"alert_id": "x1", "action": "raised", "key": "smoke:r1:n1", "kind": "smoke", "title": "SMOKE"}
    alerts.replay(raised, Severity.CRITICAL, "r1", 10.0)
    alerts.replay({**raised, "action": "acknowledged", "actor": "guard1"}, Severity.CRITICAL, "r1", 11.0)
    alerts.replay({"alert_id": "x2", "action": "raised"}, Severity.INFO, None, 12.0)  # no key: not ours
    alerts.replay({"nonsense": True}, Severity.INFO, None, 12.0)
    (alert,) = alerts.open_alerts()
    assert (alert.alert_id, alert.state, alert.acknowledged_by, alert.raised_at) == \
        ("x1", AlertState.ACKNOWLEDGED, "guard1", 10.0)
    assert alerts.signal(Sig("smoke:r1:n1", kind="smoke"), 13.0) == []  # still the same situation
    alerts.replay({**raised, "action": "resolved", "actor": "rules"}, Severity.CRITICAL, "r1", 14.0)
    assert alerts.open_alerts() == []
