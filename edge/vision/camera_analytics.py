"""Per-camera analytics: detections to tracks, smoothed counts, zone presence and line crossings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.config_vision import CameraConfig
from edge.vision.detector import Found
from edge.vision.tracker import Box, IouTracker, Track
from edge.vision.zones import CountSmoother, LineCounter, Zone, ZoneDwell, anchor


@dataclass(frozen=True, slots=True)
class Crossing:
    """New crossings of one line since the last update, and its totals."""

    line_id: str
    ins: int
    outs: int
    total_in: int
    total_out: int


@dataclass(frozen=True, slots=True)
class Presence:
    """A track entered (present) or left a zone."""

    zone_id: str
    track_id: int
    entered_at: float
    present: bool


@dataclass(frozen=True, slots=True)
class AnalyticsUpdate:
    """What changed on one detector run: counts by zone (None = the whole view), presence, lines."""

    counts: dict[str | None, int] = field(default_factory=dict)
    presence: list[Presence] = field(default_factory=list)
    crossings: list[Crossing] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)


def relative_boxes(found: Sequence[Found], width: int, height: int) -> list[tuple[Box, float]]:
    """Pixel boxes to relative ones, with their scores."""
    return [((f.box[0] / width, f.box[1] / height, f.box[2] / width, f.box[3] / height), f.score)
            for f in found]


class CameraAnalytics:
    """The counting state of one camera; fed each detector result with its time."""

    def __init__(self, camera: CameraConfig) -> None:
        self._tracker = IouTracker()
        self._zones = [(Zone(z.id, z.polygon), z.anchor) for z in camera.zones]
        # One dwell tracker per anchor mode, so presence uses the same point as the counts.
        self._dwells: list[tuple[ZoneDwell, list[Zone]]] = []
        for mode in ("bottom_center", "center"):
            zones = [zone for zone, zone_mode in self._zones if zone_mode == mode]
            if zones:
                self._dwells.append((ZoneDwell(anchor_mode=mode), zones))
        self._smoothing = camera.smoothing_s
        self._smoothers: dict[str | None, CountSmoother] = {}
        self._lines = [LineCounter(line.id, line.a, line.b) for line in camera.lines]
        self._inside: dict[tuple[str, int], float] = {}

    def newcomer_since(self) -> float | None:
        """When a person seen once (not yet a track) was first seen; None when nobody waits."""
        return self._tracker.newcomer_since()

    def update(self, detections: Sequence[tuple[Box, float]], now: float) -> AnalyticsUpdate:
        """Apply one detector result (relative boxes) and report what changed."""
        raw: dict[str | None, int] = {None: len(detections)}
        for zone, mode in self._zones:
            raw[zone.zone_id] = sum(1 for box, _ in detections if zone.contains(*anchor(box, mode)))
        counts = {}
        for key, value in raw.items():
            smoothed = self._smooth(key, value, now)
            if smoothed is not None:
                counts[key] = smoothed
        tracks = self._tracker.update(detections, now)
        return AnalyticsUpdate(counts, self._presence(tracks, now), self._crossings(tracks, now), tracks)

    def _smooth(self, key: str | None, value: int, now: float) -> int | None:
        smoother = self._smoothers.get(key)
        if smoother is None:
            smoother = self._smoothers[key] = CountSmoother(self._smoothing)
        return smoother.update(value, now)

    def _presence(self, tracks: list[Track], now: float) -> list[Presence]:
        if not self._zones:
            return []
        current = {(p.zone_id, p.track_id): p.entered_at
                   for dwell, zones in self._dwells for p in dwell.update(tracks, zones, now)}
        changes = [Presence(zone, track, entered, True)
                   for (zone, track), entered in current.items() if (zone, track) not in self._inside]
        changes += [Presence(zone, track, entered, False)
                    for (zone, track), entered in self._inside.items() if (zone, track) not in current]
        self._inside = current
        return changes

    def _crossings(self, tracks: list[Track], now: float) -> list[Crossing]:
        out = []
        for line in self._lines:
            ins, outs = line.update(tracks, now)
            if ins or outs:
                total_in, total_out = line.totals
                out.append(Crossing(line.line_id, ins, outs, total_in, total_out))
        return out
