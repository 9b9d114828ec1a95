"""The rooms overview built from real bus events: readings, statuses, counts, camera health."""

from __future__ import annotations

import asyncio
from typing import Any

from edge.bus import Bus
from edge.config import EdgeConfig
from edge.events import CameraStats, DeviceStatus, Occupancy, Reading
from edge.rooms_view import RoomsView

CONFIG: dict[str, Any] = {
    "site_id": "s", "gateway_id": "g",
    "rooms": [{"id": "r2", "name": "Lab"}, {"id": "r1"}],
    "devices": [{"id": "n1", "room_id": "r1", "type": "simulated", "name": "Sensor one"},
                {"id": "n2", "room_id": "r1", "type": "simulated"},
                {"id": "n3", "room_id": "r2", "type": "simulated"}],
    "cameras": [{"id": "cam1", "room_id": "r1", "url": "file:a.avi", "name": "Front"},
                {"id": "cam2", "room_id": "r1", "url": "file:b.avi"},
                {"id": "cam3", "room_id": "r2", "url": "file:c.avi", "enabled": False}],
}


def view() -> tuple[Bus, RoomsView]:
    bus = Bus()
    return bus, RoomsView(bus, EdgeConfig.model_validate(CONFIG))


def room(rooms: list[dict[str, Any]], room_id: str) -> dict[str, Any]:
    (found,) = [r for r in rooms if r["room_id"] == room_id]
    return found


def test_before_any_event_every_room_and_camera_is_listed_with_nulls() -> None:
    _, rooms = view()
    listed = rooms.rooms()
    assert [r["room_id"] for r in listed] == ["r2", "r1"]  # config order
    assert listed[0]["name"] == "Lab" and listed[1]["name"] == "r1"
    assert listed[1]["occupancy"] == {"count": None, "cameras": {}, "zones": {}, "ts": None}
    assert listed[1]["readings"] == [] and listed[1]["cameras"] == ["cam1", "cam2"]
    unknown = {"type": "simulated", "online": None, "reason": None, "ts": None}
    assert listed[1]["devices"] == [{"device_id": "n1", "name": "Sensor one", **unknown},
                                    {"device_id": "n2", "name": "n2", **unknown}]
    assert listed[0]["cameras"] == []  # cam3 is disabled
    assert rooms.cameras() == [
        {"camera_id": "cam1", "name": "Front", "room_id": "r1", "online": None, "input_fps": None,
         "detect_fps": None, "last_frame_age_s": None, "last_error": None, "ts": None},
        {"camera_id": "cam2", "name": "cam2", "room_id": "r1", "online": None, "input_fps": None,
         "detect_fps": None, "last_frame_age_s": None, "last_error": None, "ts": None}]


def test_readings_keep_the_latest_per_device_and_metric_sorted() -> None:
    bus, rooms = view()
    bus.publish(Reading("n2", "temperature", 20.0, "C", 10.0))
    bus.publish(Reading("n1", "temperature", 21.0, "C", 11.0, room_id="r1"))
    bus.publish(Reading("n1", "co2", 400, "ppm", 12.0))
    bus.publish(Reading("n1", "temperature", 22.5, "C", 13.0))
    bus.publish(Reading("n3", "humidity", 40.0, "%", 14.0))
    rooms.drain()
    r1 = room(rooms.rooms(), "r1")
    assert r1["readings"] == [
        {"device_id": "n1", "metric": "co2", "value": 400.0, "unit": "ppm", "ts": 12.0},
        {"device_id": "n1", "metric": "temperature", "value": 22.5, "unit": "C", "ts": 13.0},
        {"device_id": "n2", "metric": "temperature", "value": 20.0, "unit": "C", "ts": 10.0}]
    assert room(rooms.rooms(), "r2")["readings"][0]["value"] == 40.0


def test_device_status_gives_online_reason_and_time() -> None:
    bus, rooms = view()
    bus.publish(DeviceStatus("n1", True, 5.0, "r1"))
    bus.publish(DeviceStatus("n2", True, 5.0, "r1"))
    bus.publish(DeviceStatus("n2", False, 9.0, "r1", "no reply for 30 s"))
    bus.publish(DeviceStatus("cam1", False, 9.0, "r1", "stream lost"))  # a camera: shown from its stats
    rooms.drain()
    devices = {d["device_id"]: d for d in room(rooms.rooms(), "r1")["devices"]}
    assert (devices["n1"]["online"], devices["n1"]["reason"], devices["n1"]["ts"]) == (True, None, 5.0)
    assert (devices["n2"]["online"], devices["n2"]["reason"], devices["n2"]["ts"]) == (
        False, "no reply for 30 s", 9.0)
    assert set(devices) == {"n1", "n2"}


def test_occupancy_is_the_busiest_camera_with_cameras_and_zones_listed() -> None:
    bus, rooms = view()
    bus.publish(Occupancy("r1", 3, 20.0, camera_id="cam1"))
    bus.publish(Occupancy("r1", 5, 21.0, camera_id="cam2"))
    bus.publish(Occupancy("r1", 2, 22.0, camera_id="cam1", zone_id="door"))
    bus.publish(Occupancy("r1", 1, 19.0, camera_id="cam2", zone_id="door"))
    bus.publish(Occupancy("r1", 4, 23.0, camera_id="cam2"))
    rooms.drain()
    occupancy = room(rooms.rooms(), "r1")["occupancy"]
    assert occupancy == {"count": 4, "cameras": {"cam1": 3, "cam2": 4},
                         "zones": {"cam1:door": 2, "cam2:door": 1}, "ts": 23.0}
    bus.publish(Occupancy("r1", 0, 24.0, camera_id="cam1"))
    bus.publish(Occupancy("r1", 0, 25.0, camera_id="cam2"))
    rooms.drain()
    assert room(rooms.rooms(), "r1")["occupancy"]["count"] == 0


def test_zone_counts_alone_leave_the_room_count_null() -> None:
    bus, rooms = view()
    bus.publish(Occupancy("r1", 2, 20.0, camera_id="cam1", zone_id="door"))
    rooms.drain()
    occupancy = room(rooms.rooms(), "r1")["occupancy"]
    assert occupancy["count"] is None and occupancy["zones"] == {"cam1:door": 2} and occupancy["ts"] == 20.0


def test_camera_stats_show_the_latest_health() -> None:
    bus, rooms = view()
    bus.publish(CameraStats("cam1", "r1", True, 30.0, input_fps=9.8, detect_fps=2.0, last_frame_age_s=0.1))
    bus.publish(CameraStats("cam2", "r1", True, 30.0, input_fps=10.0))
    bus.publish(CameraStats("cam2", "r1", False, 40.0, last_error="connection refused"))
    rooms.drain()
    cams = {c["camera_id"]: c for c in rooms.cameras()}
    assert cams["cam1"] == {"camera_id": "cam1", "name": "Front", "room_id": "r1", "online": True,
                            "input_fps": 9.8, "detect_fps": 2.0, "last_frame_age_s": 0.1,
                            "last_error": None, "ts": 30.0}
    assert (cams["cam2"]["online"], cams["cam2"]["last_error"], cams["cam2"]["ts"]) == (
        False, "connection refused", 40.0)
    assert cams["cam2"]["last_frame_age_s"] is None


def test_unknown_rooms_devices_and_cameras_are_ignored() -> None:
    bus, rooms = view()
    before = rooms.rooms(), rooms.cameras()
    bus.publish(Reading("ghost", "temperature", 20.0, "C", 1.0, room_id="r9"))
    bus.publish(Reading("ghost", "temperature", 20.0, "C", 1.0))
    bus.publish(DeviceStatus("ghost", True, 1.0, "r1"))
    bus.publish(Occupancy("r9", 3, 1.0, camera_id="cam9"))
    bus.publish(Occupancy("r1", 3, 1.0))  # no camera: not a camera count
    bus.publish(Occupancy("r2", 3, 1.0, camera_id="cam3"))  # disabled camera
    bus.publish(CameraStats("cam9", "r9", True, 1.0))
    rooms.drain()
    assert (rooms.rooms(), rooms.cameras()) == before
    assert rooms.ignored == 7


def test_bad_values_are_dropped_not_fatal() -> None:
    bus, rooms = view()
    bad: list[object] = [
        Reading("n1", "temperature", float("nan"), "C", 1.0),
        Reading("n1", "temperature", float("inf"), "C", 1.0),
        Reading("n1", "temperature", "hot", "C", 1.0),  # type: ignore[arg-type]
        Reading("n1", "temperature", True, "C", 1.0),
        Reading(["n1"], "temperature", 1.0, "C", 1.0),  # type: ignore[arg-type]
        Reading("n1", "temperature", 1.0, "C", float("nan")),
        Reading("ghost", "temperature", 1.0, "C", 1.0, room_id=["r1"]),  # type: ignore[arg-type]
        DeviceStatus("n1", "yes", 1.0),  # type: ignore[arg-type]
        DeviceStatus({"n1": 1}, True, 1.0),  # type: ignore[arg-type]
        Occupancy("r1", -1, 1.0, camera_id="cam1"),
        Occupancy("r1", 2.5, 1.0, camera_id="cam1"),  # type: ignore[arg-type]
        Occupancy("r1", 2, None, camera_id="cam1"),  # type: ignore[arg-type]
        Occupancy("r1", 2, 1.0, camera_id=["cam1"]),  # type: ignore[arg-type]
        Occupancy("r1", 2, 1.0, camera_id="cam1", zone_id=7),  # type: ignore[arg-type]
        CameraStats("cam1", "r1", "up", 1.0),  # type: ignore[arg-type]
        "not an event",
    ]
    for event in bad:
        rooms.observe(event)
    assert rooms.ignored == len(bad)
    bus.publish(Reading("n1", "temperature", 21.0, "C", 2.0))
    rooms.drain()
    r1 = room(rooms.rooms(), "r1")
    assert [r["value"] for r in r1["readings"]] == [21.0]
    assert r1["occupancy"]["count"] is None and r1["devices"][0]["online"] is None
    assert rooms.cameras()[0]["online"] is None


async def test_the_running_service_follows_the_bus() -> None:
    bus, rooms = view()
    ready = asyncio.Event()
    task = asyncio.create_task(rooms.run(ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 2)
        for i in range(2000):  # a flood of readings must not push a status change out
            bus.publish(Reading("n1", "co2", float(i), "ppm", float(i)))
        bus.publish(DeviceStatus("n2", False, 3.0, "r1", "unplugged"))
        async with asyncio.timeout(2):
            while room(rooms.rooms(), "r1")["devices"][1]["online"] is not False:
                await asyncio.sleep(0.01)
        async with asyncio.timeout(2):
            while room(rooms.rooms(), "r1")["readings"][0]["value"] != 1999.0:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
