"""People rules from camera analytics: intrusion, loitering, overcrowding."""

from __future__ import annotations

from collections.abc import Mapping

from edge.alerts.schedule import RoomSchedule
from edge.alerts.signals import Emitter, Level, Want
from edge.config_alerts import RulesConfig
from edge.events import Occupancy, Severity, ZonePresence

ZoneKey = tuple[str, str, str]  # room_id, camera_id, zone_id


def zone_matches(zones: list[str] | None, camera_id: str, zone_id: str) -> bool:
    """Whether a configured zone list (None = all) covers this camera's zone."""
    return zones is None or zone_id in zones or f"{camera_id}:{zone_id}" in zones


class PeopleRules:
    """Tracks who is in which zone and how many are in each room."""

    def __init__(self, config: RulesConfig, schedules: Mapping[str, RoomSchedule], out: Emitter) -> None:
        self.config = config
        self.schedules = schedules
        self.out = out
        self._tracks: dict[ZoneKey, dict[int, float]] = {}  # track_id -> entered_at
        self._empty_since: dict[ZoneKey, float] = {}
        self._intrusion: dict[ZoneKey, Level] = {}
        self._counts: dict[str, dict[str, int]] = {}  # room -> camera (or "") -> count
        self._crowd: dict[str, Level] = {}

    def on_presence(self, event: ZonePresence, now: float) -> None:
        """A person entered or left a zone."""
        if not isinstance(event.track_id, int) or not isinstance(event.entered_at, int | float):
            return
        zone: ZoneKey = (event.room_id, event.camera_id, event.zone_id)
        tracks = self._tracks.setdefault(zone, {})
        if event.present:
            tracks[event.track_id] = min(float(event.entered_at), now)
            self._empty_since.pop(zone, None)
        else:
            tracks.pop(event.track_id, None)
            if not tracks:
                self._empty_since.setdefault(zone, now)
        self._zone(zone, now)

    def on_occupancy(self, event: Occupancy, now: float) -> None:
        """A camera's (not a zone's) person count changed."""
        if event.zone_id is not None or not isinstance(event.count, int) or event.count < 0:
            return
        self._counts.setdefault(event.room_id, {})[event.camera_id or ""] = event.count
        self._room(event.room_id, now)

    def tick(self, now: float) -> None:
        """Re-check the time-based conditions."""
        for zone in list(self._tracks):
            self._zone(zone, now)
        for room in list(self._counts):
            self._room(room, now)

    def _zone(self, zone: ZoneKey, now: float) -> None:
        room, cam, zone_id = zone
        tracks = self._tracks.get(zone, {})
        intruding = self._check_intrusion(zone, tracks, now)
        cfg = self.config.loitering
        key = f"loitering:{room}:{cam}:{zone_id}"
        schedule = self.schedules.get(room)
        in_class = schedule is not None and schedule.in_class(now)
        longest = max((now - at for at in tracks.values()), default=0.0)
        # After hours the intrusion alert already covers the person; one alert per situation.
        loitering = (cfg.enabled and zone_matches(cfg.zones, cam, zone_id) and not intruding
                     and (cfg.during_class or not in_class) and longest >= cfg.after_s)
        self.out.set(key, Want(
            "loitering", Severity.WARNING, room, f"Person lingering in {self.out.room(room)} ({zone_id})",
            {"zone_id": zone_id, "people": len(tracks), "longest_s": round(longest)},
            camera_id=cam) if loitering else None, now)
        if not tracks and zone in self._empty_since and not self._intrusion.get(zone, Level()).on:
            del self._tracks[zone]  # forget idle zones so tick() stays small

    def _check_intrusion(self, zone: ZoneKey, tracks: dict[int, float], now: float) -> bool:
        room, cam, zone_id = zone
        cfg = self.config.intrusion
        key = f"intrusion:{room}:{cam}:{zone_id}"
        schedule = self.schedules.get(room)
        if not cfg.enabled or schedule is None or not zone_matches(cfg.zones, cam, zone_id):
            # Without a timetable nobody can tell after hours from class time: the rule stays out.
            self._intrusion.pop(zone, None)
            self.out.set(key, None, now)
            return False
        if cfg.allowed == "periods":
            allowed = schedule.in_class(now, cfg.margin_s)
        else:
            allowed = schedule.in_school_day(now, cfg.margin_s)
        settled = [at for at in tracks.values() if now - at >= cfg.grace_s]
        # Cleared only by a zone that is really empty (and has been for clear_after_s): with
        # clear_after_s 0 an occupied zone must not count as "empty for 0 s".
        empty = not tracks and zone in self._empty_since
        cleared = allowed or (empty and now - self._empty_since[zone] >= cfg.clear_after_s)
        level = self._intrusion.setdefault(zone, Level())
        on = level.step(bool(settled) and not allowed, cleared, now, 0.0)
        since = min(settled, default=now)
        self.out.set(key, Want(
            "intrusion", Severity.CRITICAL, room, f"Person in {self.out.room(room)} after hours",
            {"zone_id": zone_id, "people": len(tracks), "since": since}, camera_id=cam) if on else None, now)
        return on

    def _room(self, room: str, now: float) -> None:
        cfg = self.config.overcrowding
        key = f"overcrowding:{room}"
        capacity = cfg.capacity.get(room, cfg.default_capacity)
        if not cfg.enabled or capacity is None:
            self.out.set(key, None, now)
            return
        # Cameras of one room see the same people: the largest count is the room's count.
        count = max(self._counts.get(room, {}).values(), default=0)
        level = self._crowd.setdefault(room, Level())
        on = level.step(count > capacity, count <= capacity - cfg.hysteresis, now, cfg.for_s)
        self.out.set(key, Want(
            "overcrowding", Severity.WARNING, room,
            f"{self.out.room(room)} over capacity ({count}/{capacity})",
            {"count": count, "capacity": capacity}) if on else None, now)
