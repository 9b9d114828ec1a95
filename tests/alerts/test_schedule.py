"""RoomSchedule: class time from epoch seconds, with time zones, DST, terms and holidays."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from edge.alerts.schedule import RoomSchedule
from edge.config_alerts import ScheduleConfig

SHANGHAI = {
    "timezone": "Asia/Shanghai",
    "periods": [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "08:45"},
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:55", "end": "09:40"},
        {"days": ["mon", "wed"], "start": 840, "end": "14:45"},  # YAML's reading of unquoted 14:00
    ],
    "terms": [{"start": "2025-09-01", "end": "2026-01-16"}],
    "holidays": [{"start": "2025-10-01", "end": "2025-10-07"}, "2025-09-03"],
}


def at(zone: str, local: str) -> float:
    """Epoch seconds of a local wall time."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text + "+00:00").timestamp()


def shanghai() -> RoomSchedule:
    return RoomSchedule(ScheduleConfig.model_validate(SHANGHAI))


def sh(local: str) -> float:
    return at("Asia/Shanghai", local)


def test_shanghai_timetable() -> None:
    s = shanghai()
    assert s.in_class(sh("2025-09-02 08:00"))  # Tuesday, first period starts
    assert s.in_class(sh("2025-09-02 08:44"))
    assert not s.in_class(sh("2025-09-02 08:45"))  # end is exclusive
    assert not s.in_class(sh("2025-09-02 08:50"))  # break
    assert s.in_class(sh("2025-09-02 09:00"))
    assert not s.in_class(sh("2025-09-02 14:10"))  # afternoon period is mon/wed only
    assert s.in_class(sh("2025-09-01 14:10"))
    assert not s.in_class(sh("2025-09-06 08:30"))  # Saturday
    # 08:30 in Shanghai is 00:30 UTC: no DST, always UTC+8.
    assert s.in_class(utc("2025-12-02 00:30"))


def test_school_day_includes_breaks_and_margin() -> None:
    s = shanghai()
    assert s.in_school_day(sh("2025-09-02 08:50"))
    assert not s.in_school_day(sh("2025-09-02 07:50"))
    assert s.in_school_day(sh("2025-09-02 07:50"), margin_s=900)
    assert not s.in_school_day(sh("2025-09-02 22:00"), margin_s=1800)
    assert s.in_class(sh("2025-09-02 07:50"), margin_s=900)


def test_term_end_and_holidays() -> None:
    s = shanghai()
    assert s.in_class(sh("2026-01-16 08:30"))  # last day of term is included
    assert not s.in_class(sh("2026-01-19 08:30"))  # Monday after the term
    assert not s.in_class(sh("2025-08-29 08:30"))  # before the term
    assert not s.in_class(sh("2025-09-03 08:30"))  # single holiday
    assert not s.in_class(sh("2025-10-07 08:30"))  # last day of the range
    assert s.in_class(sh("2025-10-08 08:30"))


def test_next_change() -> None:
    s = shanghai()
    assert s.next_change(sh("2025-09-02 07:00")) == sh("2025-09-02 08:00")
    assert s.next_change(sh("2025-09-02 08:10")) == sh("2025-09-02 08:45")
    # Tuesday's last period ends 09:40; Wednesday 3rd is a holiday, so Thursday 08:00 is next.
    assert s.next_change(sh("2025-09-02 10:00")) == sh("2025-09-04 08:00")
    assert s.next_change(sh("2026-01-17 10:00")) is None  # no more terms


def test_back_to_back_periods_merge() -> None:
    cfg = ScheduleConfig.model_validate({"timezone": "UTC", "periods": [
        {"days": ["mon"], "start": "08:00", "end": "09:00"},
        {"days": ["mon"], "start": "09:00", "end": "10:00"}]})
    s = RoomSchedule(cfg)
    assert s.next_change(utc("2025-09-01 08:30")) == utc("2025-09-01 10:00")


BERLIN = {"timezone": "Europe/Berlin", "periods": [
    {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "08:00", "end": "09:00"},
    {"days": ["sun"], "start": "01:30", "end": "03:30"},
]}


def test_berlin_dst_spring_forward() -> None:
    s = RoomSchedule(ScheduleConfig.model_validate(BERLIN))
    # Friday 28 March 2025: CET (UTC+1), 08:30 local is 07:30 UTC.
    assert s.in_class(utc("2025-03-28 07:30"))
    assert not s.in_class(utc("2025-03-28 06:30"))
    # Sunday 30 March: clocks jump 02:00 -> 03:00; now CEST (UTC+2), 08:30 local is 06:30 UTC.
    assert s.in_class(utc("2025-03-30 06:30"))
    assert not s.in_class(utc("2025-03-30 07:30"))  # 09:30 local
    # The 01:30-03:30 period lasts one real hour that night: 00:30 UTC to 01:30 UTC.
    assert s.intervals(datetime(2025, 3, 30).date())[0] == (utc("2025-03-30 00:30"), utc("2025-03-30 01:30"))
    assert s.next_change(utc("2025-03-29 09:00")) == utc("2025-03-30 00:30")


def test_berlin_dst_fall_back() -> None:
    s = RoomSchedule(ScheduleConfig.model_validate(BERLIN))
    # Sunday 26 October 2025: back to CET, 08:00 local is 07:00 UTC.
    assert s.next_change(utc("2025-10-26 05:00")) == utc("2025-10-26 07:00")
    assert s.in_class(utc("2025-10-26 07:30"))
    assert not s.in_class(utc("2025-10-26 06:30"))


def test_no_periods_never_in_class() -> None:
    s = RoomSchedule(ScheduleConfig())
    assert not s.in_class(utc("2025-09-01 08:30"))
    assert not s.in_school_day(utc("2025-09-01 08:30"), margin_s=3600)
    assert s.next_change(utc("2025-09-01 08:30")) is None


@pytest.mark.parametrize("bad", [
    {"timezone": "Mars/Olympus"},
    {"periods": [{"days": ["mon"], "start": "09:00", "end": "08:00"}]},
    {"periods": [{"days": ["monday"], "start": "08:00", "end": "09:00"}]},
    {"periods": [{"days": ["mon"], "start": "8.00", "end": "09:00"}]},
    {"periods": [{"days": [], "start": "08:00", "end": "09:00"}]},
    {"terms": [{"start": "2025-09-02", "end": "2025-09-01"}]},
    {"holidays": ["not a date"]},
    {"weekends": []},
])
def test_bad_schedules_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ScheduleConfig.model_validate(bad)
