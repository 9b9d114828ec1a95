"""RuleEngine: events and injected times in, one raise and one clear per situation out."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge.alerts import AlertSignal, RoomSchedule, RuleEngine
from edge.config_alerts import RulesConfig, ScheduleConfig
from edge.events import (
    CameraStats,
    DeviceStatus,
    Envelope,
    Occupancy,
    Reading,
    SafetyEvent,
    Severity,
    ZonePresence,
)

SCHEDULE = ScheduleConfig.model_validate({"timezone": "Asia/Shanghai", "periods": [
    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "12:00"}]})


def sh(local: str) -> float:
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


NIGHT = sh("2025-09-02 22:00")  # Tuesday, after hours
CLASS = sh("2025-09-02 09:00")  # Tuesday, in class


def engine(**rules: Any) -> RuleEngine:
    return RuleEngine(RulesConfig.model_validate(rules), {"r101": RoomSchedule(SCHEDULE)},
                      room_names={"r101": "Classroom 101"}, camera_ids={"cam1"})


def presence(t: float, present: bool, track: int = 7, entered: float | None = None,
             zone: str = "door") -> ZonePresence:
    return ZonePresence("cam1", "r101", zone, track, t if entered is None else entered, t, present)


def safety(kind: str, t: float, **data: Any) -> Envelope:
    ev = SafetyEvent(kind, Severity.CRITICAL, t, "device:node1", "r101", {"device_id": "node1", **data})
    return Envelope(ev, 1, t)


def co2(t: float, ppm: float) -> Reading:
    return Reading("s1", "co2", ppm, "ppm", t, "r101")


def kinds(signals: list[AlertSignal]) -> list[tuple[str, bool]]:
    return [(s.kind, s.active) for s in signals]


def test_intrusion_after_hours_raised_once_and_resolved() -> None:
    e = engine()
    t = NIGHT
    assert e.observe(presence(t, True), t) == []  # grace_s: not yet
    assert e.tick(t + 2) == []
    [sig] = e.tick(t + 5)
    assert (sig.key, sig.kind, sig.active, sig.severity) == (
        "intrusion:r101:cam1:door", "intrusion", True, Severity.CRITICAL)
    assert sig.title == "Person in Classroom 101 after hours" and sig.camera_id == "cam1"
    assert e.tick(t + 60) == []  # raised once
    assert e.observe(presence(t + 100, False), t + 100) == []  # clear_after_s: a lost track is not a leave
    assert e.tick(t + 120) == []
    [clear] = e.tick(t + 130)
    assert (clear.key, clear.active) == ("intrusion:r101:cam1:door", False)


def test_intrusion_with_no_grace_and_no_clear_delay_stays_raised_while_someone_is_there() -> None:
    e = engine(intrusion={"grace_s": 0, "clear_after_s": 0})
    t = NIGHT
    [sig] = e.observe(presence(t, True), t)
    assert sig.active
    for dt in (0.1, 0.2, 1.0, 5.0):  # occupied: "empty for 0 s" must not clear it
        assert e.tick(t + dt) == []
    [clear] = e.observe(presence(t + 6, False), t + 6)
    assert not clear.active


def test_intrusion_not_during_class_nor_school_day_margin() -> None:
    e = engine()
    for t in (CLASS, sh("2025-09-02 12:20")):  # in class; in the margin after the last period
        e.observe(presence(t, True), t)
        assert e.tick(t + 60) == []
        e.observe(presence(t + 61, False), t + 61)


def test_intrusion_zone_filter_and_room_without_schedule() -> None:
    e = engine(intrusion={"zones": ["cam1:window"]})
    e.observe(presence(NIGHT, True), NIGHT)
    assert e.tick(NIGHT + 60) == []
    e.observe(ZonePresence("cam9", "r999", "door", 1, NIGHT, NIGHT, True), NIGHT)
    assert e.tick(NIGHT + 60) == []


def test_overcrowding_needs_for_s_and_clears_with_hysteresis() -> None:
    e = engine(overcrowding={"capacity": {"r101": 40}, "for_s": 60, "hysteresis": 2})
    t = CLASS
    assert e.observe(Occupancy("r101", 45, t, camera_id="cam1"), t) == []
    assert e.observe(Occupancy("r101", 40, t + 30, camera_id="cam1"), t + 30) == []  # dip resets
    assert e.observe(Occupancy("r101", 45, t + 40, camera_id="cam1"), t + 40) == []
    assert e.tick(t + 90) == []
    [sig] = e.tick(t + 100)
    assert (sig.kind, sig.active, sig.title) == ("overcrowding", True, "Classroom 101 over capacity (45/40)")
    assert e.observe(Occupancy("r101", 39, t + 110, camera_id="cam1"), t + 110) == []  # inside the band
    assert kinds(e.observe(Occupancy("r101", 38, t + 120, camera_id="cam1"), t + 120)) == [
        ("overcrowding", False)]
    # Zone counts do not count towards the room.
    assert e.observe(Occupancy("r101", 99, t + 130, camera_id="cam1", zone_id="door"), t + 130) == []


def test_loitering_after_after_s_outside_class() -> None:
    e = engine(intrusion={"enabled": False}, loitering={"after_s": 300, "zones": ["corridor"]})
    t = sh("2025-09-02 13:00")  # lunch: not in a period
    e.observe(presence(t, True, zone="corridor"), t)
    assert e.tick(t + 299) == []
    [sig] = e.tick(t + 300)
    assert (sig.key, sig.severity) == ("loitering:r101:cam1:corridor", Severity.WARNING)
    assert kinds(e.observe(presence(t + 400, False, zone="corridor"), t + 400)) == [("loitering", False)]
    # During class a pupil sitting in a zone is not loitering.
    e.observe(presence(CLASS, True, track=8, zone="corridor"), CLASS)
    assert e.tick(CLASS + 1000) == []


def test_co2_alarm_debounce_and_hysteresis() -> None:
    e = engine()
    t = NIGHT
    assert e.observe(co2(t, 1600), t) == []
    assert e.observe(co2(t + 300, 1400), t + 300) == []  # dipped below: the 10 minutes restart
    assert e.observe(co2(t + 310, 1600), t + 310) == []
    assert e.tick(t + 900) == []
    [sig] = e.tick(t + 910)
    assert (sig.kind, sig.severity, sig.title) == (
        "co2_high", Severity.WARNING, "CO2 high in Classroom 101 (1600 ppm)")
    assert e.observe(co2(t + 920, 1450), t + 920) == []  # not below 1500 - 100
    assert kinds(e.observe(co2(t + 930, 1390), t + 930)) == [("co2_high", False)]


def test_co2_notice_only_during_class() -> None:
    e = engine()
    assert e.observe(co2(NIGHT, 1200), NIGHT) == [] and e.tick(NIGHT + 3600) == []
    t = sh("2025-09-02 11:50")
    e.observe(co2(t, 1200), t)
    [sig] = e.tick(t + 300)
    assert (sig.kind, sig.severity) == ("co2_notice", Severity.INFO)
    e.observe(co2(t + 400, 1200), t + 400)
    assert kinds(e.tick(sh("2025-09-02 12:00"))) == [("co2_notice", False)]  # class over


def test_illuminance_notice_only_during_class() -> None:
    e = engine()
    assert e.observe(Reading("l1", "illuminance", 50, "lx", NIGHT, "r101"), NIGHT) == []
    assert e.tick(NIGHT + 3600) == []
    e.observe(Reading("l1", "illuminance", 250, "lx", CLASS, "r101"), CLASS)
    [sig] = e.tick(CLASS + 300)
    assert (sig.kind, sig.severity, sig.title) == (
        "illuminance_low", Severity.INFO, "Classroom 101 too dark for class (250 lx)")
    assert e.observe(Reading("l1", "illuminance", 310, "lx", CLASS + 310, "r101"), CLASS + 310) == []
    assert kinds(e.observe(Reading("l1", "illuminance", 340, "lx", CLASS + 320, "r101"), CLASS + 320)) == [
        ("illuminance_low", False)]


def test_temperature_low_and_stale_reading_clears() -> None:
    e = engine(temperature={"for_s": 60})
    e.observe(Reading("t1", "temperature", 12.0, "C", NIGHT, "r101"), NIGHT)
    [sig] = e.tick(NIGHT + 60)
    assert (sig.key, sig.detail["direction"]) == ("temperature:r101:low", "low")
    assert kinds(e.tick(NIGHT + 60 + 901)) == [("temperature", False)]  # sensor silent too long


def test_panic_raises_at_once_and_waits_for_a_person() -> None:
    e = engine()
    press = safety("panic_button", NIGHT)
    [sig] = e.observe(press, NIGHT)
    assert (sig.kind, sig.severity, sig.source_event_id) == ("panic", Severity.CRITICAL, press.event.event_id)
    assert e.observe(safety("panic_button", NIGHT + 1), NIGHT + 1) == []  # pressed again: same situation
    assert e.observe(safety("panic_button_cleared", NIGHT + 2), NIGHT + 2) == []  # button released
    e.resolved_by_person(sig.key)
    assert e.active == {}
    [again] = e.observe(safety("panic_button", NIGHT + 10), NIGHT + 10)  # a new press, no cooldown
    assert again.active


def test_panic_auto_resolve_option_and_smoke() -> None:
    e = engine(panic={"auto_resolve": True})
    e.observe(safety("panic_button", NIGHT), NIGHT)
    assert kinds(e.observe(safety("panic_button_cleared", NIGHT + 5), NIGHT + 5)) == [("panic", False)]
    [smoke] = e.observe(safety("smoke_alarm", NIGHT), NIGHT)
    assert (smoke.key, smoke.title) == ("smoke:r101:node1", "SMOKE ALARM in Classroom 101")
    assert kinds(e.observe(safety("smoke_alarm_cleared", NIGHT + 9), NIGHT + 9)) == [("smoke", False)]
    [again] = e.observe(safety("smoke_alarm", NIGHT + 10), NIGHT + 10)  # critical: no cooldown
    assert again.active


def test_door_held_open() -> None:
    e = engine(door_held_open_s=120)
    assert e.observe(safety("door_open", CLASS), CLASS) == []
    assert e.tick(CLASS + 119) == []
    [sig] = e.tick(CLASS + 120)
    assert (sig.kind, sig.severity) == ("door_held_open", Severity.WARNING)
    assert kinds(e.observe(safety("door_open_cleared", CLASS + 200), CLASS + 200)) == [
        ("door_held_open", False)]
    e.observe(safety("door_open", CLASS + 300), CLASS + 300)
    e.observe(safety("door_open_cleared", CLASS + 310), CLASS + 310)
    assert e.tick(CLASS + 1000) == []  # a short opening is nothing


def test_device_and_camera_offline() -> None:
    e = engine(offline={"for_s": 120})
    assert e.observe(DeviceStatus("node1", False, NIGHT, "r101", "timeout"), NIGHT) == []
    e.observe(DeviceStatus("cam1", False, NIGHT, "r101"), NIGHT)
    e.observe(DeviceStatus("node2", False, NIGHT + 100, "r101"), NIGHT + 100)
    e.observe(DeviceStatus("node2", True, NIGHT + 110, "r101"), NIGHT + 110)  # a blip
    signals = e.tick(NIGHT + 120)
    assert sorted((s.key, s.camera_id) for s in signals) == [
        ("camera_offline:cam1", "cam1"), ("device_offline:node1", None)]
    assert e.tick(NIGHT + 500) == []
    assert [(s.key, s.active) for s in e.observe(DeviceStatus("node1", True, NIGHT + 600, "r101"),
                                                 NIGHT + 600)] == [("device_offline:node1", False)]


def test_camera_learned_from_stats() -> None:
    e = RuleEngine(RulesConfig.model_validate({"offline": {"for_s": 0}}), {})
    e.observe(CameraStats("cam2", "r102", True, NIGHT), NIGHT)
    [sig] = e.observe(DeviceStatus("cam2", False, NIGHT, "r102"), NIGHT)
    assert sig.kind == "camera_offline" and sig.title == "Camera cam2 offline (room r102)"


def test_camera_tamper_raise_and_clear() -> None:
    e = engine()
    ev = SafetyEvent("camera_tamper", Severity.WARNING, NIGHT, "camera:cam1", "r101",
                     {"camera_id": "cam1", "kind": "covered", "active": True, "snapshot_id": "s9"})
    [sig] = e.observe(Envelope(ev, 5, NIGHT), NIGHT)
    assert (sig.key, sig.camera_id, sig.detail["snapshot_id"]) == ("camera_tamper:cam1:covered", "cam1", "s9")
    assert sig.title == "Camera cam1 covered (Classroom 101)"
    clear = SafetyEvent("camera_tamper_cleared", Severity.INFO, NIGHT + 30, "camera:cam1", "r101",
                        {"camera_id": "cam1", "kind": "covered", "active": False})
    assert kinds(e.observe(Envelope(clear, 6, NIGHT + 30), NIGHT + 30)) == [("camera_tamper", False)]


def test_cooldown_prevents_flapping() -> None:
    e = engine(offline={"for_s": 0}, cooldown_s=300)
    t = NIGHT
    assert kinds(e.observe(DeviceStatus("node1", False, t, "r101"), t)) == [("device_offline", True)]
    back = e.observe(DeviceStatus("node1", True, t + 10, "r101"), t + 10)
    assert kinds(back) == [("device_offline", False)]
    for i in range(5):  # flapping within the cooldown: silence
        assert e.observe(DeviceStatus("node1", False, t + 20 + i, "r101"), t + 20 + i) == []
        assert e.observe(DeviceStatus("node1", True, t + 20.5 + i, "r101"), t + 20.5 + i) == []
    e.observe(DeviceStatus("node1", False, t + 100, "r101"), t + 100)
    assert e.tick(t + 200) == []
    assert kinds(e.tick(t + 310)) == [("device_offline", True)]  # still offline after the cooldown


def test_manual_resolve_mutes_until_the_condition_clears() -> None:
    e = engine(door_held_open_s=60)
    e.observe(safety("door_open", CLASS), CLASS)
    [sig] = e.tick(CLASS + 60)
    e.resolved_by_person(sig.key)
    assert e.tick(CLASS + 1000) == []  # still open, but a person knows
    assert e.observe(safety("door_open_cleared", CLASS + 1100), CLASS + 1100) == []


@pytest.mark.parametrize("event", [
    None, "text", 42, object(),
    Reading("s1", "co2", float("nan"), "ppm", NIGHT, "r101"),
    Reading("s1", "co2", "high", "ppm", NIGHT, "r101"),  # type: ignore[arg-type]
    Reading("s1", "co2", 5000, "ppm", NIGHT, None),
    Reading("s1", "humidity", 99, "%", NIGHT, "r101"),
    Occupancy("r101", -3, NIGHT, camera_id="cam1"),
    ZonePresence("cam1", "r101", "door", "x", NIGHT, NIGHT, True),  # type: ignore[arg-type]
    Envelope(SafetyEvent("mystery", Severity.INFO, NIGHT, "x"), 1, NIGHT),
    Envelope("not an event", 1, NIGHT),  # type: ignore[arg-type]
    SafetyEvent("panic_button", Severity.CRITICAL, NIGHT, "device:n1", "r101"),  # not stored yet
])
def test_bad_or_unknown_events_are_ignored(event: object) -> None:
    e = engine()
    assert e.observe(event, NIGHT) == []
    assert e.tick(NIGHT + 3600) == []


def test_safety_event_with_broken_data_still_raises() -> None:
    # Better an alert with less detail than a lost one.
    ev = SafetyEvent("camera_tamper", Severity.WARNING, NIGHT, "camera:c", None, "x")  # type: ignore[arg-type]
    [sig] = engine().observe(Envelope(ev, 1, NIGHT), NIGHT)
    assert (sig.key, sig.title) == ("camera_tamper:c:tamper", "Camera c tampered with (unknown room)")
