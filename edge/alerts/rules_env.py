"""Indoor-climate rules from sensor readings: CO2, temperature, illuminance."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping

from edge.alerts.schedule import RoomSchedule
from edge.alerts.signals import Emitter, Level, Want
from edge.config_alerts import RulesConfig
from edge.events import Reading, Severity

METRICS = ("co2", "temperature", "illuminance")


class EnvRules:
    """Keeps each room's latest reading per device and metric, and the levels built on them."""

    def __init__(self, config: RulesConfig, schedules: Mapping[str, RoomSchedule], out: Emitter) -> None:
        self.config = config
        self.schedules = schedules
        self.out = out
        self._latest: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}  # (room, metric) -> dev
        self._levels: dict[str, Level] = {}

    def on_reading(self, reading: Reading, now: float) -> None:
        """A sensor reported a value."""
        if reading.room_id is None or reading.metric not in METRICS:
            return
        value = reading.value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return
        devices = self._latest.setdefault((reading.room_id, reading.metric), {})
        devices[reading.device_id] = (float(value), now)
        self._room(reading.room_id, now)

    def tick(self, now: float) -> None:
        """Re-check every room that has readings (debounce timers, class start and end)."""
        for room in {room for room, _ in self._latest}:
            self._room(room, now)

    def _value(self, room: str, metric: str, now: float,
               pick: Callable[[Iterable[float]], float]) -> float | None:
        fresh = [v for v, at in self._latest.get((room, metric), {}).values()
                 if now - at <= self.config.reading_max_age_s]
        return pick(fresh) if fresh else None

    def _level(self, key: str, raise_now: bool, clear_now: bool, now: float, for_s: float,
               want: Want) -> None:
        on = self._levels.setdefault(key, Level()).step(raise_now, clear_now, now, for_s)
        self.out.set(key, want if on else None, now)

    def _room(self, room: str, now: float) -> None:
        cfg = self.config
        schedule = self.schedules.get(room)
        in_class = schedule is not None and schedule.in_class(now)
        name = self.out.room(room)
        # Worst case across a room's sensors, except light (median): one sensor by the window
        # should not hide a dark room, nor one in a dark corner raise a notice for a bright one.
        co2 = self._value(room, "co2", now, max)
        if cfg.co2.enabled:
            c = cfg.co2
            ppm = co2 if co2 is not None else 0.0
            self._level(f"co2_high:{room}", co2 is not None and ppm > c.alarm_ppm,
                        co2 is None or ppm < c.alarm_ppm - c.hysteresis_ppm, now, c.alarm_for_s,
                        Want("co2_high", Severity.WARNING, room, f"CO2 high in {name} ({ppm:.0f} ppm)",
                             {"ppm": ppm, "threshold_ppm": c.alarm_ppm}))
            self._level(f"co2_notice:{room}", in_class and co2 is not None and ppm > c.notice_ppm,
                        not in_class or co2 is None or ppm < c.notice_ppm - c.hysteresis_ppm, now,
                        c.notice_for_s,
                        Want("co2_notice", Severity.INFO, room,
                             f"Open the windows in {name}: CO2 {ppm:.0f} ppm",
                             {"ppm": ppm, "threshold_ppm": c.notice_ppm}))
        if cfg.temperature.enabled:
            t = cfg.temperature
            active = in_class or not t.during_class_only
            low, high = self._value(room, "temperature", now, min), self._value(room, "temperature", now, max)
            self._level(f"temperature:{room}:low", active and low is not None and low < t.min_c,
                        not active or low is None or low >= t.min_c + t.hysteresis_c, now, t.for_s,
                        Want("temperature", Severity.WARNING, room, f"{name} too cold ({low or 0:.1f} °C)",
                             {"celsius": low, "min_c": t.min_c, "direction": "low"}))
            self._level(f"temperature:{room}:high", active and high is not None and high > t.max_c,
                        not active or high is None or high <= t.max_c - t.hysteresis_c, now, t.for_s,
                        Want("temperature", Severity.WARNING, room, f"{name} too hot ({high or 0:.1f} °C)",
                             {"celsius": high, "max_c": t.max_c, "direction": "high"}))
        if cfg.illuminance.enabled:
            i = cfg.illuminance
            lux = self._value(room, "illuminance", now, statistics.median)
            self._level(f"illuminance_low:{room}", in_class and lux is not None and lux < i.min_lux,
                        not in_class or lux is None or lux >= i.min_lux + i.hysteresis_lux, now, i.for_s,
                        Want("illuminance_low", Severity.INFO, room,
                             f"{name} too dark for class ({lux or 0:.0f} lx)",
                             {"lux": lux, "min_lux": i.min_lux}))
