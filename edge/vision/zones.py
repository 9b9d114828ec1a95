"""Zones, line crossings, dwell times and a count smoother, on tracks in relative frame coordinates."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edge.vision.tracker import Box, Track

Point = tuple[float, float]
AnchorMode = Literal["bottom_center", "center"]


def check_point(point: Sequence[float], what: str) -> Point:
    """Return point as (x, y) floats, or raise ValueError unless both lie in 0..1."""
    if len(point) != 2:
        raise ValueError(f"{what}: a point is (x, y), got {point!r}")
    x, y = float(point[0]), float(point[1])
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"{what}: coordinates are relative to the frame and must be in 0..1, got {point!r}")
    return (x, y)


def anchor(box: Box, mode: AnchorMode = "bottom_center") -> Point:
    """The point of a box that says where the object is: the feet (bottom centre) or the centre."""
    x1, y1, x2, y2 = box
    if mode == "bottom_center":
        return ((x1 + x2) / 2, y2)
    if mode == "center":
        return ((x1 + x2) / 2, (y1 + y2) / 2)
    raise ValueError(f"anchor mode must be 'bottom_center' or 'center', got {mode!r}")


def _cross(a: Point, b: Point, p: Point) -> float:
    """Positive when p is right of a->b as seen on screen (y grows downwards), negative when left."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point, tolerance: float = 1e-9) -> bool:
    if abs(_cross(a, b, p)) > tolerance:
        return False
    return min(a[0], b[0]) - tolerance <= p[0] <= max(a[0], b[0]) + tolerance and (
        min(a[1], b[1]) - tolerance <= p[1] <= max(a[1], b[1]) + tolerance
    )


def _sides(polygon: Sequence[Point]) -> list[tuple[Point, Point]]:
    """The polygon's edges as (start, end) pairs, closing back to the first point."""
    return list(zip(polygon, (*polygon[1:], polygon[0]), strict=True))


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon in relative frame coordinates (even-odd rule; points on an edge count as inside)."""

    zone_id: str
    polygon: Sequence[Point]

    def __post_init__(self) -> None:
        if not self.zone_id:
            raise ValueError("zone_id must not be empty")
        where = f"zone {self.zone_id!r}"
        if len(self.polygon) < 3:
            raise ValueError(f"{where}: a polygon needs at least 3 points, got {len(self.polygon)}")
        points = tuple(check_point(p, where) for p in self.polygon)
        doubled_area = sum(_cross((0.0, 0.0), p, q) for p, q in _sides(points))
        if abs(doubled_area) < 1e-12:
            raise ValueError(f"{where}: the polygon has no area (its points are collinear)")
        object.__setattr__(self, "polygon", points)  # a tuple, so the frozen zone really is immutable

    def contains(self, x: float, y: float) -> bool:
        """Whether (x, y) lies inside the polygon or on its boundary."""
        point = (x, y)
        edges = _sides(self.polygon)
        if any(_on_segment(a, b, point) for a, b in edges):
            return True
        inside = False
        for (ax, ay), (bx, by) in edges:
            # Cast a ray to the right; count the edges it crosses (half-open in y, so vertices count once).
            if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
                inside = not inside
        return inside


class CountSmoother:
    """Median of the counts seen in the last window_s (the lower one of two), published when it changes."""

    def __init__(self, window_s: float = 4.0) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0 (0: raw counts), got {window_s}")
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()
        self._published: int | None = None

    def update(self, count: int, now: float) -> int | None:
        """Add a sample; return the smoothed count if it differs from the last one returned, else None."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self._samples.append((now, count))
        while len(self._samples) > 1 and self._samples[0][0] <= now - self.window_s:
            self._samples.popleft()
        # The low median: for an even number of samples the lower middle one. Equal to the mean of
        # the two rounded half down when they differ by 1, and it never publishes a count that no
        # frame saw (a jump from 2 to 5 must not pass through 3).
        smoothed = sorted(c for _, c in self._samples)[(len(self._samples) - 1) // 2]
        if smoothed == self._published:
            return None
        self._published = smoothed
        return smoothed


@dataclass(slots=True)
class _LineState:
    side: int  # +1 right of a->b, -1 left
    position: Point  # where the anchor was last seen clearly on that side
    last_seen: float


class LineCounter:
    """Counts tracks whose anchor crosses the segment a->b.

    "In" is a crossing from the left of a->b to its right, as seen on screen (y grows downwards):
    standing on a and facing b, right is your right hand. For a=(0, 0.5), b=(1, 0.5), "in" means
    moving down the picture. An anchor closer than margin to the line keeps its previous side, so
    jitter on the line never counts; a track counts again only after crossing back.
    """

    def __init__(
        self,
        line_id: str,
        a: Point,
        b: Point,
        margin: float = 0.01,
        anchor_mode: AnchorMode = "bottom_center",
        forget_s: float = 30.0,
    ) -> None:
        self.line_id = line_id
        self.a = check_point(a, f"line {line_id!r}")
        self.b = check_point(b, f"line {line_id!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self._length = math.dist(self.a, self.b)
        if self._length <= 2 * margin:
            raise ValueError(f"line {line_id!r}: a and b must be more than 2 x margin apart: {a!r}, {b!r}")
        self.margin = margin
        self.anchor_mode: AnchorMode = anchor_mode
        self.forget_s = forget_s
        self._tracks: dict[int, _LineState] = {}
        self._ins = 0
        self._outs = 0

    @property
    def totals(self) -> tuple[int, int]:
        """(ins, outs) since this counter was made."""
        return (self._ins, self._outs)

    def update(self, tracks: Sequence[Track], now: float) -> tuple[int, int]:
        """Feed the tracks seen now; return the (ins, outs) that happened since the last update."""
        ins = outs = 0
        for track in tracks:
            point = anchor(track.box, self.anchor_mode)
            distance = _cross(self.a, self.b, point) / self._length
            state = self._tracks.get(track.track_id)
            if state is not None:
                state.last_seen = now
            if abs(distance) <= self.margin:
                continue  # too close to call: keep the side it had
            side = 1 if distance > 0 else -1
            if state is None:
                self._tracks[track.track_id] = _LineState(side, point, now)
                continue
            if side != state.side and self._crosses_segment(state.position, point):
                ins, outs = (ins + 1, outs) if side > 0 else (ins, outs + 1)
            state.side, state.position = side, point
        self._ins += ins
        self._outs += outs
        # Track ids are never reused, so a track gone for forget_s is gone for good.
        self._tracks = {k: s for k, s in self._tracks.items() if now - s.last_seen <= self.forget_s}
        return (ins, outs)

    def _crosses_segment(self, start: Point, end: Point) -> bool:
        """Whether the move start->end (on opposite sides of the line) passes between a and b."""
        d_start, d_end = _cross(self.a, self.b, start), _cross(self.a, self.b, end)
        t = d_start / (d_start - d_end)
        crossing = (start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
        ab = (self.b[0] - self.a[0], self.b[1] - self.a[1])
        along = ((crossing[0] - self.a[0]) * ab[0] + (crossing[1] - self.a[1]) * ab[1]) / self._length**2
        return 0.0 <= along <= 1.0


@dataclass(frozen=True, slots=True)
class ZonePresence:
    """A track inside a zone now: since when, and for how long."""

    zone_id: str
    track_id: int
    entered_at: float
    dwell_s: float


class ZoneDwell:
    """How long each track has been inside each zone, for intrusion and loitering alerts.

    A presence outlives a missed detection or a step outside the zone by up to grace_s (and keeps
    being reported, entry time unchanged), so detector flicker neither restarts a loitering clock
    nor makes a leave/enter pair; after that the track is forgotten for that zone.
    """

    def __init__(self, grace_s: float = 2.0, anchor_mode: AnchorMode = "bottom_center") -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s}")
        self.grace_s = grace_s
        self.anchor_mode: AnchorMode = anchor_mode
        self._inside: dict[tuple[str, int], tuple[float, float]] = {}  # -> (entered_at, last inside)

    def update(self, tracks: Sequence[Track], zones: Sequence[Zone], now: float) -> list[ZonePresence]:
        """Return one presence per (zone, track) inside now or within grace_s of last being inside."""
        for zone in zones:
            for track in tracks:
                if not zone.contains(*anchor(track.box, self.anchor_mode)):
                    continue
                key = (zone.zone_id, track.track_id)
                entered_at, last_inside = self._inside.get(key, (now, now))
                if now - last_inside > self.grace_s:
                    entered_at = now  # gone too long: this is a new visit
                self._inside[key] = (entered_at, now)
        zone_ids = {zone.zone_id for zone in zones}
        self._inside = {
            key: times
            for key, times in self._inside.items()
            if key[0] in zone_ids and now - times[1] <= self.grace_s
        }
        return [
            ZonePresence(zone_id, track_id, entered_at, now - entered_at)
            for (zone_id, track_id), (entered_at, _) in sorted(self._inside.items())
        ]
