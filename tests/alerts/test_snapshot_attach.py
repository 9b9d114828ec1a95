"""Zone snapshots join people alerts: an open one takes it as a stored transition, a new one at raise."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from edge.alerts.lifecycle import SNAPSHOT_FRESH_S, AlertBook
from edge.alerts.service import AlertService, alert_event
from edge.alerts.signals import AlertSignal
from edge.bus import Bus
from edge.clock import ManualClock
from edge.config import EdgeConfig
from edge.events import Envelope, SafetyEvent, Severity, ZonePresence, ZoneSnapshot
from edge.store import Store
from tests.alerts.test_alert_service import CLIP
from tests.conftest import Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway, watching


def person(kind: str = "intrusion", zone: str = "door", camera: str | None = "cam1",
           active: bool = True) -> AlertSignal:
    return AlertSignal(f"{kind}:r1:{camera}:{zone}", kind, active, Severity.CRITICAL, "r1", "Person",
                       0.0, {"zone_id": zone, "people": 1}, camera_id=camera)


def detail(alerts: AlertBook, alert_id: str) -> Mapping[str, Any]:
    alert = alerts.get(alert_id)
    assert alert is not None, alert_id
    return alert.detail


def book() -> AlertBook:
    ids = (f"a{i}" for i in itertools.count(1))
    return AlertBook(new_id=lambda: next(ids))


def test_an_open_intrusion_takes_the_zone_snapshot_once_as_a_system_transition() -> None:
    alerts = book()
    (raised,) = alerts.signal(person(), 100.0)
    assert "snapshot_id" not in detail(alerts, raised.alert_id)
    assert alerts.zone_snapshot("cam1", "hall", "s-other-zone", 101.0, 101.0) == []
    assert alerts.zone_snapshot("cam2", "door", "s-other-cam", 101.0, 101.0) == []
    (attached,) = alerts.zone_snapshot("cam1", "door", "s1", 102.0, 102.5)
    assert (attached.alert_id, attached.action, attached.actor) == ("a1", "snapshot", "system")
    assert attached.ts == 102.5
    alert = alerts.get("a1")
    assert alert is not None and alert.detail["snapshot_id"] == "s1" and alert.updated_at == 102.5
    assert alert.detail["people"] == 1  # the rest of the detail stays
    assert alerts.zone_snapshot("cam1", "door", "s2", 110.0, 110.0) == []  # the first one stays
    assert detail(alerts, "a1")["snapshot_id"] == "s1"


def test_an_alert_raised_within_a_minute_after_the_snapshot_carries_it() -> None:
    alerts = book()
    assert alerts.zone_snapshot("cam1", "door", "s1", 1000.0, 1000.0) == []
    alerts.signal(person(), 1000.0 + SNAPSHOT_FRESH_S)
    assert detail(alerts, "a1")["snapshot_id"] == "s1"
    alerts.signal(person("loitering", zone="door"), 1030.0)
    assert detail(alerts, "a2")["snapshot_id"] == "s1"
    alerts.signal(person(active=False), 1100.0)
    alerts.signal(person(), 1000.0 + SNAPSHOT_FRESH_S + 1)  # too old to show this situation
    assert "snapshot_id" not in detail(alerts, "a3")


def test_only_people_alerts_of_that_zone_take_a_snapshot() -> None:
    alerts = book()
    alerts.signal(person("overcrowding"), 10.0)
    alerts.signal(person(camera=None, zone="yard"), 10.0)
    alerts.signal(AlertSignal("panic:r1:n1", "panic", True, Severity.CRITICAL, "r1", "PANIC", 10.0,
                              {"device_id": "n1"}), 10.0)
    assert alerts.zone_snapshot("cam1", "door", "s1", 11.0, 11.0) == []
    assert alerts.zone_snapshot("None", "yard", "s2", 11.0, 11.0) == []
    assert all("snapshot_id" not in a.detail for a in alerts.open_alerts())


def test_replay_of_the_stored_transitions_keeps_the_snapshot() -> None:
    alerts = book()
    transitions = alerts.signal(person(), 5.0) + alerts.zone_snapshot("cam1", "door", "s1", 6.0, 6.0)
    stored = [alert_event(a, t) for t in transitions if (a := alerts.get(t.alert_id)) is not None]
    assert [e.data["action"] for e in stored] == ["raised", "snapshot"]
    assert stored[1].data["detail"]["snapshot_id"] == "s1" and stored[1].data["actor"] == "system"
    again = book()
    for event in stored:
        again.replay(event.data, event.severity, event.room_id, event.occurred_at)
    (alert,) = again.open_alerts()
    assert alert.detail["snapshot_id"] == "s1" and alert.raised_at == 5.0 and alert.updated_at == 6.0


@asynccontextmanager
async def service(store: Store, bus: Bus, clock: ManualClock) -> AsyncIterator[AlertService]:
    """An alerts service over a real store, rebuilt from the store's alert events like the daemon's."""
    config = EdgeConfig.model_validate({
        "site_id": "s", "gateway_id": "g",
        "rooms": [{"id": "r1", "schedule": {"timezone": "Asia/Shanghai", "periods": []}}],
        "alerts": {"rules": {"intrusion": {"grace_s": 0}}}})

    async def record(event: SafetyEvent) -> Envelope:
        envelope = await store.add_event(event)
        bus.publish(envelope)
        return envelope

    alerts = AlertService(config, bus, clock, record, history=store.alert_replay)
    started = asyncio.Event()
    task = asyncio.create_task(alerts.run(started.set))
    try:
        await started.wait()
        yield alerts
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(check: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_the_service_attaches_stores_and_replays_snapshots(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    bus, clock = Bus(), ManualClock()
    try:
        async with service(store, bus, clock) as alerts:
            now = clock.now()
            bus.publish(ZonePresence("cam1", "r1", "door", 7, now, now, True))
            await until(alerts.book.open_alerts)
            (open_alert,) = alerts.book.open_alerts()
            assert "snapshot_id" not in open_alert.detail
            clock.advance(2)
            bus.publish(ZoneSnapshot("cam1", "r1", "door", "snap-door", clock.now()))
            await until(lambda: "snapshot_id" in alerts.book.open_alerts()[0].detail)
            # A snapshot first, then a person: the new alert is raised with it, no extra transition.
            bus.publish(ZoneSnapshot("cam1", "r1", "hall", "snap-hall", clock.now()))
            clock.advance(1)
            bus.publish(ZonePresence("cam1", "r1", "hall", 8, clock.now(), clock.now(), True))
            await until(lambda: len(alerts.book.open_alerts()) == 2)
        door = await store.alert_history(open_alert.alert_id)
        assert [(r["action"], r["actor"]) for r in door] == [("raised", "rules"), ("snapshot", "system")]
        assert door[1]["data"]["detail"]["snapshot_id"] == "snap-door" and door[1]["state"] == "raised"
        (hall,) = [a for a in alerts.book.open_alerts() if a.alert_id != open_alert.alert_id]
        assert [r["action"] for r in await store.alert_history(hall.alert_id)] == ["raised"]
        assert hall.detail["snapshot_id"] == "snap-hall"
        async with service(store, bus, clock) as restarted:  # the daemon restarts
            again = restarted.book.get(open_alert.alert_id)
            assert again is not None and again.detail["snapshot_id"] == "snap-door"
            bus.publish(ZoneSnapshot("cam1", "r1", "door", "snap-later", clock.now()))
            await asyncio.sleep(1.3)  # a full tick: the replayed alert keeps its first snapshot
            assert detail(restarted.book, open_alert.alert_id)["snapshot_id"] == "snap-door"
        assert len(await store.alert_history(open_alert.alert_id)) == 2
    finally:
        await store.close()


async def test_a_camera_intrusion_in_the_gateway_carries_a_kept_snapshot(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    prefix = f"t/{tmp_path.name}"
    cams = [{"id": "cam1", "room_id": "r1", "url": f"file:{CLIP}", "detect_fps": 4, "smoothing_s": 1,
             "zones": [{"id": "path", "polygon": [[0.3, 0.3], [0.95, 0.3], [0.95, 0.75], [0.3, 0.75]]}]}]
    rooms = [{"id": "r1", "name": "Room 1", "schedule": {"timezone": "Asia/Shanghai", "periods": []}}]
    alerts = {"rules": {"intrusion": {"grace_s": 1}}}
    path = gateway_config_path(tmp_path, mosquitto, [], cameras=cams, rooms=rooms, alerts=alerts)
    async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path) as gateway:
        # Raised with the snapshot, or given it by a later "snapshot" transition: either way published.
        event = await mqtt.wait_json(f"{prefix}/event", lambda b: b["type"] == "alert"
                                     and "snapshot_id" in b["data"]["detail"], timeout=30)
        assert event["data"]["kind"] == "intrusion" and event["data"]["action"] in ("raised", "snapshot")
        assert gateway.snapshots is not None
        assert gateway.snapshots.path_for(event["data"]["detail"]["snapshot_id"]) is not None
