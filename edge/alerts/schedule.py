"""A room's timetable as a pure function of epoch time (time zone and DST aware)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from edge.config_alerts import WEEKDAYS, DateRange, ScheduleConfig

Interval = tuple[float, float]  # [start, end) in epoch seconds

LOOKAHEAD_DAYS = 400  # next_change() looks this far; longer than any school year with holidays


class RoomSchedule:
    """When classes are held in one room."""

    def __init__(self, config: ScheduleConfig) -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        # Per weekday (0 = Monday) the local (start, end) periods, sorted.
        self._periods: list[list[tuple[time, time]]] = [[] for _ in WEEKDAYS]
        for period in config.periods:
            for day in period.days:
                self._periods[WEEKDAYS.index(day)].append((period.start, period.end))
        for periods in self._periods:
            periods.sort()
        # Every reading and every tick asks about today (and its neighbours with a margin):
        # the config is frozen, so a day's intervals are worked out once.
        self._days: dict[date, tuple[Interval, ...]] = {}

    def teaching_day(self, day: date) -> bool:
        """Whether classes can be held on this local date (inside a term, not a holiday)."""
        if self.config.terms and not any(term.contains(day) for term in self.config.terms):
            return False
        for holiday in self.config.holidays:
            if holiday.contains(day) if isinstance(holiday, DateRange) else holiday == day:
                return False
        return True

    def intervals(self, day: date) -> list[Interval]:
        """The day's class periods as merged epoch intervals (back-to-back periods join)."""
        cached = self._days.get(day)
        if cached is None:
            if len(self._days) > 8:
                self._days.clear()
            cached = self._days[day] = tuple(self._work_out(day))
        return list(cached)

    def _work_out(self, day: date) -> list[Interval]:
        if not self.teaching_day(day):
            return []
        merged: list[Interval] = []
        for start, end in self._periods[day.weekday()]:
            # Local wall times to epoch via zoneinfo: correct on DST days (a 23 or 25 hour day).
            s = datetime.combine(day, start, self.tz).timestamp()
            e = datetime.combine(day, end, self.tz).timestamp()
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        return merged

    def local_date(self, ts: float) -> date:
        """The room's local date at an epoch time."""
        return datetime.fromtimestamp(ts, self.tz).date()

    def in_class(self, ts: float, margin_s: float = 0.0) -> bool:
        """Whether a class period is on at ts (periods widened by margin_s on both sides)."""
        today = self.local_date(ts)
        days = [today] if margin_s <= 0 else [today - timedelta(days=1), today, today + timedelta(days=1)]
        return any(s - margin_s <= ts < e + margin_s for d in days for s, e in self.intervals(d))

    def in_school_day(self, ts: float, margin_s: float = 0.0) -> bool:
        """Whether ts is between the day's first period start and last period end (breaks included)."""
        today = self.local_date(ts)
        for d in (today - timedelta(days=1), today, today + timedelta(days=1)):
            spans = self.intervals(d)
            if spans and spans[0][0] - margin_s <= ts < spans[-1][1] + margin_s:
                return True
        return False

    def next_change(self, ts: float) -> float | None:
        """Epoch time of the next class start or end after ts; None if nothing within ~a year."""
        today = self.local_date(ts)
        for offset in range(LOOKAHEAD_DAYS):
            for start, end in self.intervals(today + timedelta(days=offset)):
                if start > ts:
                    return start
                if end > ts:
                    return end
        return None
