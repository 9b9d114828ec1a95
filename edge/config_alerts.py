"""Config for room timetables and the safety-alert rules (pure data; logic is in edge.alerts)."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator, model_validator

from edge.config_base import StrictModel, located

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_HHMM_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_ZONE_REF_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}:)?[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _clock_time(value: object) -> object:
    # YAML 1.1 reads an unquoted 10:00 as the base-60 integer 600 (while 08:00 stays a string),
    # so an integer here is minutes since midnight, which is what the installer wrote.
    if isinstance(value, bool):
        raise ValueError("expected a time like '08:00'")  # noqa: TRY004 - pydantic wants ValueError
    if isinstance(value, int):
        if not 0 <= value < 24 * 60:
            raise ValueError("expected a time like '08:00' (quote it)")
        return time(value // 60, value % 60)
    if isinstance(value, str):
        match = _HHMM_RE.match(value.strip())
        if not match:
            raise ValueError(f"{value!r} is not a time like '08:00'")
        return time(int(match.group(1)), int(match.group(2)))
    return value


ClockTime = Annotated[time, BeforeValidator(_clock_time)]


def _zone_ref(value: str) -> str:
    if not _ZONE_REF_RE.match(value):
        raise ValueError(f"{value!r} must be a zone id ('door') or camera_id:zone_id ('cam1:door')")
    return value


class PeriodConfig(StrictModel):
    """One weekly class period, in the room's local time."""

    days: list[Weekday] = Field(min_length=1, description="Weekdays it repeats on: mon, tue, ... sun.")
    start: ClockTime = Field(description="Local start time, 'HH:MM' (quote it in YAML).")
    end: ClockTime = Field(description="Local end time, 'HH:MM', after start (no crossing midnight).")

    @model_validator(mode="after")
    def _ordered(self) -> PeriodConfig:
        if self.end <= self.start:
            raise located("end must be after start", "end")
        return self


class DateRange(StrictModel):
    """An inclusive range of local dates."""

    start: date = Field(description="First day (YYYY-MM-DD), included.")
    end: date = Field(description="Last day (YYYY-MM-DD), included.")

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise located("end must not be before start", "end")
        return self

    def contains(self, day: date) -> bool:
        """Whether the day is inside the range."""
        return self.start <= day <= self.end


class ScheduleConfig(StrictModel):
    """A room's timetable: when classes are held, so rules know 'class time' from 'after hours'."""

    timezone: str = Field("Asia/Shanghai", description="IANA time zone of the school, e.g. 'Europe/Berlin'.")
    periods: list[PeriodConfig] = Field(default_factory=list,
                                        description="Weekly class periods; empty means no classes ever.")
    terms: list[DateRange] = Field(
        default_factory=list,
        description="Teaching terms; outside every term there are no classes. Empty: every week "
                    "is a teaching week.")
    holidays: list[date | DateRange] = Field(
        default_factory=list, description="Days without classes: dates or {start, end} ranges.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like 'Asia/Shanghai'") from err
        return value


class IntrusionRule(StrictModel):
    """A person in a watched zone outside school hours."""

    enabled: bool = Field(True, description="Raise intrusion alerts.")
    zones: list[str] | None = Field(
        None, description="Zones that count: 'zone_id' (any camera) or 'camera_id:zone_id'; "
                          "unset: every zone.")
    grace_s: float = Field(5.0, ge=0, description="A person must stay this long before it is raised "
                                                  "(filters tracker blips).")
    clear_after_s: float = Field(30.0, ge=0, description="The zone must be empty this long before the "
                                                         "alert resolves (a lost track is not a departure).")
    allowed: Literal["school_day", "periods"] = Field(
        "school_day", description="When people are expected: 'school_day' (first period start to last "
                                  "period end, breaks included) or 'periods' (only during periods).")
    margin_s: float = Field(1800.0, ge=0, description="Extra time before and after the allowed hours "
                                                      "(teachers arrive early, pupils leave late).")

    _zones = field_validator("zones")(lambda v: v if v is None else [_zone_ref(z) for z in v])


class OvercrowdingRule(StrictModel):
    """More people in a room than it is built for."""

    enabled: bool = Field(True, description="Raise overcrowding alerts.")
    capacity: dict[str, int] = Field(default_factory=dict,
                                     description="Capacity per room id, in persons.")
    default_capacity: int | None = Field(None, ge=1, description="Capacity of rooms not in capacity; "
                                                                 "unset: those rooms are not checked.")
    for_s: float = Field(60.0, ge=0, description="The count must stay above capacity this long.")
    hysteresis: int = Field(2, ge=0, description="Clears when the count is at most capacity minus this.")

    @field_validator("capacity")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for room, cap in value.items():
            if cap < 1:
                raise ValueError(f"capacity of {room!r} must be at least 1")
        return value


class LoiteringRule(StrictModel):
    """Someone staying in a zone for a long time (corridors, exits, stairwells)."""

    enabled: bool = Field(True, description="Raise loitering alerts.")
    zones: list[str] | None = Field(None, description="Zones that count, 'zone_id' or 'camera_id:zone_id'; "
                                                      "unset: every zone.")
    after_s: float = Field(300.0, gt=0, description="Time in the zone after which a person is loitering.")
    during_class: bool = Field(False, description="Also during class periods (off: a pupil at a desk "
                                                  "is not loitering).")

    _zones = field_validator("zones")(lambda v: v if v is None else [_zone_ref(z) for z in v])


class Co2Rule(StrictModel):
    """Carbon dioxide: an alarm at any time, a ventilation notice during class."""

    enabled: bool = Field(True, description="Watch co2 readings.")
    alarm_ppm: float = Field(1500.0, gt=0, description="Alarm above this (ppm).")
    alarm_for_s: float = Field(600.0, ge=0, description="The alarm level must last this long.")
    notice_ppm: float = Field(1000.0, gt=0, description="Ventilation notice above this during class "
                                                        "(classroom health rules).")
    notice_for_s: float = Field(300.0, ge=0, description="The notice level must last this long.")
    hysteresis_ppm: float = Field(100.0, ge=0, description="Clears only below the level minus this.")

    @model_validator(mode="after")
    def _ordered(self) -> Co2Rule:
        if self.notice_ppm > self.alarm_ppm:
            raise located("notice_ppm must not be above alarm_ppm", "notice_ppm")
        return self


class TemperatureRule(StrictModel):
    """Room too cold or too hot."""

    enabled: bool = Field(True, description="Watch temperature readings.")
    min_c: float = Field(16.0, description="Too cold below this (deg C).")
    max_c: float = Field(30.0, description="Too hot above this (deg C).")
    for_s: float = Field(900.0, ge=0, description="The condition must last this long.")
    hysteresis_c: float = Field(0.5, ge=0, description="Clears only this far back inside the range.")
    during_class_only: bool = Field(False, description="Only during class periods.")

    @model_validator(mode="after")
    def _ordered(self) -> TemperatureRule:
        if self.max_c <= self.min_c:
            raise located("max_c must be above min_c", "max_c")
        return self


class IlluminanceRule(StrictModel):
    """Too little light for reading during class (GB 7793: 300 lx on the desk)."""

    enabled: bool = Field(True, description="Watch illuminance readings during class.")
    min_lux: float = Field(300.0, gt=0, description="Notice below this (lx) during a class period.")
    for_s: float = Field(300.0, ge=0, description="The condition must last this long.")
    hysteresis_lux: float = Field(30.0, ge=0, description="Clears only above min_lux plus this.")


class OfflineRule(StrictModel):
    """A device or camera that stopped answering."""

    enabled: bool = Field(True, description="Raise device_offline and camera_offline alerts.")
    for_s: float = Field(120.0, ge=0, description="Offline this long before it is raised.")


class PanicRule(StrictModel):
    """The panic button (always raised, never cooled down)."""

    auto_resolve: bool = Field(
        False, description="Resolve on panic_button_cleared; off: a person must resolve it, since "
                           "a push button is released a moment after it is pressed.")


class TamperRule(StrictModel):
    """Camera covered, blurred or turned away (the camera service already debounces it)."""

    enabled: bool = Field(True, description="Raise camera_tamper alerts.")


class RulesConfig(StrictModel):
    """Which situations become alerts, and when."""

    intrusion: IntrusionRule = Field(default_factory=IntrusionRule, description="After-hours presence.")
    overcrowding: OvercrowdingRule = Field(default_factory=OvercrowdingRule, description="Over capacity.")
    loitering: LoiteringRule = Field(default_factory=LoiteringRule, description="Long stays in a zone.")
    co2: Co2Rule = Field(default_factory=Co2Rule, description="CO2 alarm and notice.")
    temperature: TemperatureRule = Field(default_factory=TemperatureRule, description="Too cold or hot.")
    illuminance: IlluminanceRule = Field(default_factory=IlluminanceRule, description="Too dark in class.")
    door_held_open_s: float | None = Field(120.0, gt=0, description="Alert when a door stays open this "
                                                                    "long; unset: never.")
    offline: OfflineRule = Field(default_factory=OfflineRule, description="Devices and cameras offline.")
    panic: PanicRule = Field(default_factory=PanicRule, description="Panic button.")
    tamper: TamperRule = Field(default_factory=TamperRule, description="Camera tampering.")
    reading_max_age_s: float = Field(900.0, gt=0, description="Readings older than this are ignored "
                                                              "(a silent sensor must not hold an alert).")
    cooldown_s: float = Field(300.0, ge=0, description="After a warning or notice resolves, the same "
                                                       "situation is not raised again for this long; "
                                                       "critical alerts never wait.")


class AlertsConfig(StrictModel):
    """Safety alerts: the rules, and what happens to an alert nobody acknowledges."""

    rules: RulesConfig = Field(default_factory=RulesConfig, description="Which situations become alerts.")
    escalate_after_s: float = Field(300.0, gt=0, description="A critical alert not acknowledged within "
                                                             "this long is escalated (once).")
