"""Seed a data dir with stored alerts, as the gateway's AlertService would have written them.

Every transition goes through the real edge.store.Store.add_event, shaped by the real
edge.alerts.service.alert_event, in time order (so seq order is time order, as in a live store).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from pathlib import Path

from edge.alerts.lifecycle import Alert, AlertState, Transition
from edge.alerts.service import alert_event
from edge.events import Severity
from edge.store import Store

DAY_S = 86400.0
# (kind, severity, rooms' share of it): what a campus gateway's log mostly holds.
KINDS = (("device_offline", Severity.WARNING, 30), ("co2_high", Severity.WARNING, 20),
         ("door_held_open", Severity.WARNING, 15), ("intrusion", Severity.CRITICAL, 10),
         ("loitering", Severity.WARNING, 8), ("temperature", Severity.WARNING, 7),
         ("camera_tamper", Severity.WARNING, 4), ("panic_button", Severity.CRITICAL, 3),
         ("co2_notice", Severity.INFO, 3))
ROOMS = ("r101", "corridor-1", "r102", "r103", "r201", "r202", "lab-1", "hall")
GUARDS = ("sam", "olga", "ada", "lee")


@dataclass(frozen=True)
class SeedResult:
    """What was stored."""

    alerts: int
    open_alerts: int
    events: int
    seconds: float
    open_ids: tuple[str, ...]


def _alert(i: int, rng: random.Random, raised_at: float, open_now: bool) -> Alert:
    kind, severity, _ = rng.choices(KINDS, weights=[w for *_, w in KINDS])[0]
    room = rng.choice(ROOMS)
    camera = f"cam-{room}" if kind in ("intrusion", "loitering", "camera_tamper") else None
    # Open alerts get keys of their own: the book holds one open alert per key (situation).
    key = f"{kind}:{room}:bench-{i}" if open_now else f"{kind}:{room}:{rng.randrange(6)}"
    detail: dict[str, object] = {"device_id": f"node-{room}"}
    if camera is not None:
        detail = {"zone_id": "crossing", "people": rng.randint(1, 4), "since": raised_at}
    return Alert(f"bench-{i:05d}-{rng.getrandbits(32):08x}", key, kind, severity, room,
                 f"{kind.replace('_', ' ')} in {room}", AlertState.RAISED, raised_at, raised_at,
                 detail, camera)


def _transitions(alert: Alert, rng: random.Random, open_now: bool,
                 end: float) -> list[tuple[float, Alert, Transition]]:
    """The alert's life: raised, maybe escalated, acknowledged, then resolved (unless open)."""
    t = alert.raised_at
    out = [(t, alert, Transition(alert.alert_id, "raised", "rules", t))]
    by_rules = not open_now and rng.random() < 0.35  # cleared by itself before anyone looked
    if alert.severity is Severity.CRITICAL and rng.random() < 0.3:
        t += 300.0
        alert = replace(alert, escalated=True, updated_at=t)
        out.append((t, alert, Transition(alert.alert_id, "escalated", "system", t,
                                         "not acknowledged within 300s")))
    if not by_rules and (not open_now or rng.random() < 0.5):
        t = min(t + rng.uniform(20, 900), end)
        guard = rng.choice(GUARDS)
        alert = replace(alert, state=AlertState.ACKNOWLEDGED, updated_at=t, acknowledged_by=guard,
                        acknowledged_at=t)
        out.append((t, alert, Transition(alert.alert_id, "acknowledged", guard, t, "on my way")))
    if not open_now:
        t += rng.uniform(30, 3600)
        actor = "rules" if by_rules or rng.random() < 0.5 else str(alert.acknowledged_by)
        note = "condition cleared" if actor == "rules" else "checked, all fine"
        alert = replace(alert, state=AlertState.RESOLVED, updated_at=t, resolved_by=actor, resolved_at=t)
        out.append((t, alert, Transition(alert.alert_id, "resolved", actor, t, note)))
    return out


async def seed(data_dir: Path, alerts: int, open_alerts: int, now: float, old_open: int = 0,
               span_days: float = 90.0, seed_value: int = 5) -> SeedResult:
    """Store `alerts` alerts over span_days before now; `open_alerts` stay open.

    The open ones are among the newest alerts (a guard's open list is this week's), except
    `old_open` of them, raised among the oldest (an alert acknowledged months ago, never closed).
    """
    rng = random.Random(seed_value)
    start = now - span_days * DAY_S
    step = (span_days * DAY_S - 3600.0) / alerts
    recent = list(range(max(0, alerts - 6 * open_alerts), alerts))
    chosen = set(rng.sample(recent, min(len(recent), open_alerts - old_open)))
    chosen |= set(range(min(old_open, open_alerts)))
    rows: list[tuple[float, Alert, Transition]] = []
    for i in range(alerts):
        raised_at = start + i * step + rng.uniform(0, step * 0.9)
        rows += _transitions(_alert(i, rng, raised_at, i in chosen), rng, i in chosen, now - 60.0)
    rows.sort(key=lambda row: row[0])
    store = await Store.open(data_dir)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        for _, alert, transition in rows:
            await store.add_event(alert_event(alert, transition))
    finally:
        await store.close()
    open_ids = tuple(sorted(a.alert_id for _, a, t in rows if t.action == "raised"
                            and int(a.alert_id.split("-")[1]) in chosen))
    return SeedResult(alerts, len(chosen), len(rows), round(loop.time() - began, 2), open_ids)
